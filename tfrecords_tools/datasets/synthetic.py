"""A small synthetic action dataset whose classes are motions.

Each video shows a randomly textured object on a randomly textured background;
the class is the object's *motion*: which way it translates, whether it grows
or shrinks, or which way it circles. Appearance, size, speed and start point
are drawn independently of the class, so a single frame says almost nothing
about the label and a model has to use time to tell classes apart. That makes
it a fair small-scale test of video representation learning.

Files are real H.264 mp4s written with PyAV, so the demo and the tests go
through the same decoding and conversion path as real data.
"""

import csv
import fractions
import os
from typing import List, Tuple

import av
import numpy as np

from tfrecords_tools.conversion import worker_pool

CLASSES = ('circle_ccw', 'circle_cw', 'grow', 'move_down', 'move_left',
           'move_right', 'move_up', 'shrink')


def colour_field(rng: np.random.Generator, height: int, width: int,
                 low: float, high: float) -> np.ndarray:
  """float [H, W, 3]: 2-5 random colours a side (each channel uniform in
  [low, high]) interpolated bilinearly over the frame."""
  cells = rng.integers(2, 6)
  coarse = rng.uniform(low, high, size=(cells, cells, 3))
  ys = np.linspace(0, cells - 1, height)
  xs = np.linspace(0, cells - 1, width)
  y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
  y1, x1 = np.minimum(y0 + 1, cells - 1), np.minimum(x0 + 1, cells - 1)
  wy, wx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
  return ((1 - wy) * (1 - wx) * coarse[y0][:, x0] +
          (1 - wy) * wx * coarse[y0][:, x1] +
          wy * (1 - wx) * coarse[y1][:, x0] + wy * wx * coarse[y1][:, x1])


def texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  """A random texture, uint8 [H, W, 3]: a smooth colour field plus a strong
  grey-level pattern (oriented stripes of random frequency, optionally
  crossed), so that a video stays recognisable after colour jitter and
  greyscale, as real scenes do."""
  smooth = colour_field(rng, height, width, 40, 215)
  yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
  pattern = np.zeros((height, width))
  for _ in range(rng.integers(1, 3)):
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(4.0, 16.0) * height / 64
    phase = rng.uniform(0, 2 * np.pi)
    pattern += np.sin(2 * np.pi * (np.cos(angle) * xx + np.sin(angle) * yy) /
                      period + phase)
  pattern = np.sign(pattern) * rng.uniform(50, 90)
  return np.clip(smooth + pattern[:, :, None], 0, 255).astype(np.uint8)


def trajectory(rng, label: str, num_frames: int,
                size: int) -> List[Tuple[float, float, float]]:
  """Per frame (centre y, centre x, object side) for a motion class."""
  t = np.linspace(0.0, 1.0, num_frames)
  side = rng.uniform(0.25, 0.4) * size
  cy, cx = rng.uniform(0.35, 0.65, size=2) * size
  travel = rng.uniform(0.3, 0.5) * size
  if label.startswith('move_'):
    dy, dx = {'move_up': (-1, 0), 'move_down': (1, 0), 'move_left': (0, -1),
              'move_right': (0, 1)}[label]
    offset = rng.uniform(-0.5, 0.5)  # where along the path the clip starts
    ys = cy + dy * travel * (t - 0.5 + offset * 0.3)
    xs = cx + dx * travel * (t - 0.5 + offset * 0.3)
    sides = np.full(num_frames, side)
  elif label in ('grow', 'shrink'):
    small, large = rng.uniform(0.15, 0.25) * size, rng.uniform(0.45, 0.6) * size
    sides = small + (large - small) * (t if label == 'grow' else 1 - t)
    ys, xs = np.full(num_frames, cy), np.full(num_frames, cx)
  else:
    direction = 1.0 if label == 'circle_ccw' else -1.0
    radius = rng.uniform(0.15, 0.25) * size
    phase = rng.uniform(0, 2 * np.pi)
    turns = rng.uniform(0.75, 1.25)
    angle = phase + direction * 2 * np.pi * turns * t
    ys = size / 2 - radius * np.sin(angle)
    xs = size / 2 + radius * np.cos(angle)
    sides = np.full(num_frames, side)
  return list(zip(ys, xs, sides))


def render_video(label: str, seed: int, num_frames: int, size: int,
                 appearances: int = 0, appearance_seed: int = 0) -> np.ndarray:
  """uint8 [T, size, size, 3] frames of one video of class `label`.

  appearances = 0: background and object textures are the video's own.
  appearances = P > 0: they are one of P (background, object) pairs shared by
  the whole dataset (drawn with `appearance_seed`), so that videos can only
  be told apart by how the object moves.
  """
  rng = np.random.default_rng(seed)
  background = texture(rng, size, size)
  sprite = texture(rng, size, size)
  if appearances:
    pick = int(rng.integers(appearances))
    shared = np.random.default_rng([appearance_seed, pick])
    background = texture(shared, size, size)
    sprite = texture(shared, size, size)
  frames = np.empty((num_frames, size, size, 3), np.uint8)
  for i, (cy, cx, side) in enumerate(trajectory(rng, label, num_frames,
                                                 size)):
    frame = background.copy()
    half = side / 2
    y0, y1 = int(max(0, cy - half)), int(min(size, cy + half))
    x0, x1 = int(max(0, cx - half)), int(min(size, cx + half))
    if y1 > y0 and x1 > x0:
      frame[y0:y1, x0:x1] = sprite[:y1 - y0, :x1 - x0]
    noise = rng.normal(0, 4, size=frame.shape)
    frames[i] = np.clip(frame + noise, 0, 255).astype(np.uint8)
  return frames


def rgb_to_yuv420p(image: np.ndarray) -> np.ndarray:
  """uint8 [H, W, 3] RGB -> PyAV's yuv420p layout [H * 3 / 2, W] (BT.601
  limited range, chroma averaged over 2 x 2 pixels), deterministically."""
  rgb = image.astype(np.float64)
  r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
  y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
  u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
  v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
  height, width = y.shape

  def quarter(plane):
    return plane.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))
  planes = [y, quarter(u).reshape(height // 4, width),
            quarter(v).reshape(height // 4, width)]
  return np.clip(np.round(np.concatenate(planes)), 0, 255).astype(np.uint8)


def write_mp4(path: str, frames: np.ndarray, fps: int) -> None:
  """Encodes frames [T, H, W, 3] to MPEG-4 Part 2 in an .mp4, near-lossless.

  Not H.264: libx264 (single-threaded, same options) wrote different
  inter-frame decisions for the same frames from run to run when the machine
  was loaded, so the same seed gave other files; FFmpeg's own MPEG-4 encoder
  writes the same bytes every time (tested under load).
  """
  codec = 'mpeg4'
  with av.open(path, mode='w') as container:
    stream = container.add_stream(codec, rate=fractions.Fraction(fps, 1))
    stream.width, stream.height = frames.shape[2], frames.shape[1]
    stream.pix_fmt = 'yuv420p'
    # Single-threaded: deterministic files for the same seed.
    # A bitrate far above what the frames need: the quantiser stays at its
    # floor (near-lossless).
    stream.bit_rate = 50_000_000
    stream.options = {'threads': '1'}
    stream.thread_count = 1
    for image in frames:
      # Converted to yuv420p here in NumPy rather than by swscale inside
      # encode(), where the first video a process encoded once came out
      # different from the same video encoded later.
      frame = av.VideoFrame.from_ndarray(rgb_to_yuv420p(image), 'yuv420p')
      for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)


def _make_one(job):
  output_dir, label, k, seed, num_frames, size, fps, appearances, base = job
  rel = os.path.join('videos', label, f'{label}_{k:04d}.mp4')
  write_mp4(os.path.join(output_dir, rel),
            render_video(label, seed, num_frames, size, appearances, base),
            fps)
  return rel, label


def make_dataset(output_dir: str, videos_per_class: int, val_fraction: float,
                 num_frames: int, size: int, fps: int, seed: int,
                 workers: int = 0, appearances: int = 0) -> dict:
  """Writes the dataset; returns {'train': rows, 'val': rows}.

  appearances: 0 gives every video its own textures; P > 0 draws them from
  P shared (background, object) pairs (see render_video).
  """
  if size % 2:
    raise ValueError(f'size must be even for yuv420p, got {size}')
  jobs = []
  for c, label in enumerate(CLASSES):
    os.makedirs(os.path.join(output_dir, 'videos', label), exist_ok=True)
    for k in range(videos_per_class):
      jobs.append((output_dir, label, k, seed * 1_000_003 + c * 10_007 + k,
                   num_frames, size, fps, appearances, seed))
  # Spawned workers, never forked (worker_pool's module doc says why).
  made = worker_pool.map_in_order(_make_one, jobs, workers or os.cpu_count())
  num_val = int(round(videos_per_class * val_fraction))
  splits = {'train': [], 'val': []}
  for i, (rel, label) in enumerate(made):
    k = i % videos_per_class
    splits['val' if k < num_val else 'train'].append((rel, label))
  for split, rows in splits.items():
    with open(os.path.join(output_dir, f'{split}.csv'), 'w', newline='') as f:
      writer = csv.writer(f)
      writer.writerow(['path', 'label'])
      writer.writerows(rows)
  with open(os.path.join(output_dir, 'label_map.txt'), 'w') as f:
    f.write(''.join(f'{label}\n' for label in CLASSES))
  return splits
