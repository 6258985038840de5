"""A factor-controlled synthetic video set: what moves, on what nuisance.

Every video shows one solid object of a known SHAPE moving in a straight line
in one of eight DIRECTIONS over a background that is the video's own: a
texture with its own colours, optionally panning slowly (a moving camera).
The object's colour, size, speed and path are drawn independently of both
labels. So a representation can tell videos apart by their backgrounds and
colours alone (the shortcut of contrastive learning, the scene bias of
Kinetics), while what a user wants from it is the object's shape and motion:
`studies/learning_under_nuisance/run.py` probes both labels.

Output (`make_dataset`): videos/<direction>/<name>.mp4 (real MPEG-4 files,
written as `synthetic.write_mp4` writes them), train.csv / test.csv
(`path,label` with the direction as label, what `convert_videos` reads),
label_map.txt, and factors.csv (`path,split,shape,direction,pan`: both
labels of every video, joined to exported features by the clip id, which is
the path as written in the CSV).
"""

import csv
import os
from typing import Dict, List, Tuple

import numpy as np

from tfrecords_tools.conversion import worker_pool
from tfrecords_tools.datasets import synthetic

SHAPES = ('circle', 'square', 'triangle', 'cross', 'ring', 'diamond')
# Unit vectors (dy, dx) in image coordinates (y grows downwards).
DIRECTIONS = {
    'right': (0.0, 1.0), 'up_right': (-0.7071, 0.7071), 'up': (-1.0, 0.0),
    'up_left': (-0.7071, -0.7071), 'left': (0.0, -1.0),
    'down_left': (0.7071, -0.7071), 'down': (1.0, 0.0),
    'down_right': (0.7071, 0.7071)}
DIRECTION_NAMES = tuple(DIRECTIONS)


def shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
  """bool mask of `shape` at coordinates (u across, v down), unit radius."""
  r = np.hypot(u, v)
  if shape == 'circle':
    return r <= 1.0
  if shape == 'square':
    return np.maximum(np.abs(u), np.abs(v)) <= 0.8
  if shape == 'triangle':  # pointing up
    return (v <= 0.75) & (np.abs(u) <= (v + 1.0) * 0.5774)
  if shape == 'cross':
    return (((np.abs(u) <= 0.33) & (np.abs(v) <= 1.0)) |
            ((np.abs(v) <= 0.33) & (np.abs(u) <= 1.0)))
  if shape == 'ring':
    return (r <= 1.0) & (r >= 0.55)
  if shape == 'diamond':
    return np.abs(u) + np.abs(v) <= 1.0
  raise ValueError(f'shape {shape!r}: expected one of {SHAPES}')


def smooth_texture(rng: np.random.Generator, height: int, width: int,
                   scale: float = 1.0) -> np.ndarray:
  """float [H, W, 3] in [0, 255]: a smooth random colour field
  (`synthetic.colour_field`) plus 1-2 soft sinusoidal gratings (amplitude
  8-25, period 8-24 pixels times `scale`): a background of its own colours
  and texture that is not sharper than the objects on it."""
  field = synthetic.colour_field(rng, height, width, 30, 225)
  yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
  for _ in range(int(rng.integers(1, 3))):
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(8.0, 24.0) * scale
    grating = np.sin(2 * np.pi * (np.cos(angle) * xx + np.sin(angle) * yy) /
                     period + rng.uniform(0, 2 * np.pi))
    field = field + rng.uniform(8, 25) * grating[:, :, None]
  return np.clip(field, 0, 255)


def _wrapped(offset: np.ndarray, size: int) -> np.ndarray:
  """Offsets on a torus of `size`: in [-size / 2, size / 2)."""
  return np.mod(offset + size / 2, size) - size / 2


def _panned(texture: np.ndarray, y: float, x: float, size: int) -> np.ndarray:
  """The size x size window of `texture` at sub-pixel offset (y, x),
  bilinear (a smooth pan, not one-pixel jumps)."""
  y0, x0 = int(np.floor(y)), int(np.floor(x))
  wy, wx = y - y0, x - x0
  patch = texture[y0:y0 + size + 1, x0:x0 + size + 1].astype(np.float64)
  return ((1 - wy) * (1 - wx) * patch[:-1, :-1] + (1 - wy) * wx * patch[:-1, 1:]
          + wy * (1 - wx) * patch[1:, :-1] + wy * wx * patch[1:, 1:])


def render_video(shape: str, direction: str, seed: int, num_frames: int,
                 size: int, pan: bool) -> np.ndarray:
  """uint8 [T, size, size, 3]: one object of `shape` moving `direction`.

  Nuisance drawn per video: the background texture and its colours, the
  object's colour, size (0.32-0.44 of the frame), speed (1-1.6 frame widths
  over the video, wrapping around the edges) and where it starts; with `pan`
  the background also drifts by 0.05-0.2 pixels per frame (at 64 pixels)
  in a random direction.
  """
  rng = np.random.default_rng(seed)
  margin = int(np.ceil(0.2 * size * num_frames / 64)) + 2 if pan else 0
  texture = smooth_texture(rng, size + 2 * margin + 1, size + 2 * margin + 1,
                           scale=size / 64)
  colour = rng.uniform(0, 255, size=3)
  radius = rng.uniform(0.16, 0.22) * size
  # Fast enough for the Slow pathway's few temporal kernels to see at low
  # resolution: the object crosses 1-1.6 frame widths over the video,
  # wrapping around the edges (the frame is a torus for the object).
  travel = rng.uniform(1.0, 1.6) * size
  dy, dx = DIRECTIONS[direction]
  cy, cx = rng.uniform(0, size, size=2)
  pan_speed = rng.uniform(0.05, 0.2) * size / 64 if pan else 0.0
  pan_angle = rng.uniform(0, 2 * np.pi)
  yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
  frames = np.empty((num_frames, size, size, 3), np.uint8)
  for i, t in enumerate(np.linspace(-0.5, 0.5, num_frames)):
    frame = _panned(texture,
                    margin + pan_speed * (i - num_frames / 2) *
                    np.sin(pan_angle),
                    margin + pan_speed * (i - num_frames / 2) *
                    np.cos(pan_angle), size)
    oy, ox = cy + dy * travel * t, cx + dx * travel * t
    mask = shape_mask(shape, _wrapped(xx - ox, size) / radius,
                      _wrapped(yy - oy, size) / radius)
    frame[mask] = colour
    noise = rng.normal(0, 3, size=frame.shape)
    frames[i] = np.clip(frame + noise, 0, 255).astype(np.uint8)
  return frames


def _make_one(job) -> Tuple[str, str, str]:
  output_dir, shape, direction, name, seed, num_frames, size, fps, pan = job
  rel = os.path.join('videos', direction, f'{name}.mp4')
  synthetic.write_mp4(
      os.path.join(output_dir, rel),
      render_video(shape, direction, seed, num_frames, size, pan), fps)
  return rel, shape, direction


def make_dataset(output_dir: str, videos_per_cell: int, test_fraction: float,
                 num_frames: int = 48, size: int = 64, fps: int = 12,
                 seed: int = 0, pan: bool = True,
                 workers: int = 0) -> Dict[str, List[Tuple[str, str, str]]]:
  """Writes `videos_per_cell` videos of every (shape, direction) pair; a
  `test_fraction` of each pair goes to test. Returns {'train', 'test'}:
  rows (path, shape, direction)."""
  if size % 2:
    raise ValueError(f'size must be even for yuv420p, got {size}')
  if videos_per_cell < 1:
    raise ValueError(f'videos_per_cell must be >= 1, got {videos_per_cell}')
  jobs = []
  for d, direction in enumerate(DIRECTION_NAMES):
    os.makedirs(os.path.join(output_dir, 'videos', direction), exist_ok=True)
    for s, shape in enumerate(SHAPES):
      for k in range(videos_per_cell):
        video_seed = [seed, 7_919, d, s, k]
        jobs.append((output_dir, shape, direction, f'{shape}_{direction}_{k:03d}',
                     int(np.random.SeedSequence(video_seed).generate_state(1)[0]),
                     num_frames, size, fps, pan))
  # Spawned workers, never forked (worker_pool's module doc says why).
  made = worker_pool.map_in_order(_make_one, jobs, workers or os.cpu_count())
  num_test = int(round(videos_per_cell * test_fraction))
  splits = {'train': [], 'test': []}
  for i, row in enumerate(made):
    k = i % videos_per_cell
    splits['test' if k < num_test else 'train'].append(row)
  for split, rows in splits.items():
    with open(os.path.join(output_dir, f'{split}.csv'), 'w', newline='') as f:
      writer = csv.writer(f)
      writer.writerow(['path', 'label'])
      writer.writerows((path, direction) for path, _, direction in rows)
  with open(os.path.join(output_dir, 'factors.csv'), 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['path', 'split', 'shape', 'direction', 'pan'])
    for split, rows in splits.items():
      writer.writerows((path, split, shape, direction, int(pan))
                       for path, shape, direction in rows)
  with open(os.path.join(output_dir, 'label_map.txt'), 'w') as f:
    f.write(''.join(f'{name}\n' for name in DIRECTION_NAMES))
  return splits
