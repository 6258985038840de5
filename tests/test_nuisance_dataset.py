"""The factor-controlled synthetic set: both labels are what they say (a
shape, a direction), the nuisance is the video's own, files are real."""

import csv
import os

import numpy as np
import pytest

from tfrecords_tools.datasets import nuisance
from tfrecords_tools.conversion import decoder as vd
from tests.conftest import run_module


def test_the_shape_mask_of_every_shape_differs():
  u, v = np.meshgrid(np.linspace(-1.2, 1.2, 49), np.linspace(-1.2, 1.2, 49))
  masks = {s: nuisance.shape_mask(s, u, v) for s in nuisance.SHAPES}
  for a in nuisance.SHAPES:
    assert 0.1 < masks[a].mean() < 0.7
    for b in nuisance.SHAPES:
      if a < b:
        assert (masks[a] != masks[b]).mean() > 0.05, (a, b)
  with pytest.raises(ValueError, match='shape'):
    nuisance.shape_mask('star', u, v)


def _torus_centre(mask, size):
  """Centroid (y, x) of a mask on a torus (the object wraps at the edges)."""
  ys, xs = np.nonzero(mask)
  angle = 2 * np.pi / size
  return [np.angle(np.exp(1j * angle * c).mean()) / angle % size
          for c in (ys, xs)]


@pytest.mark.parametrize('direction', nuisance.DIRECTION_NAMES)
def test_the_object_moves_in_its_direction(direction):
  """Without pan, the pixels that differ from the median frame are the
  object: from frame to frame its centre moves along the direction's unit
  vector (on the torus the object wraps around)."""
  size = 64
  frames = nuisance.render_video('square', direction, seed=4, num_frames=24,
                                 size=size, pan=False).astype(float)
  background = np.median(frames, axis=0)
  centres = np.array([
      _torus_centre(np.abs(frame - background).sum(-1) > 40, size)
      for frame in frames])
  steps = (np.diff(centres, axis=0) + size / 2) % size - size / 2
  unit = np.array(nuisance.DIRECTIONS[direction])
  speed = np.linalg.norm(steps, axis=1)
  cosine = steps @ unit / speed
  assert np.median(cosine) > 0.95, (steps, unit)
  # 1-1.6 frame widths over the video's 23 steps.
  assert 0.9 * size / 23 < np.median(speed) < 1.7 * size / 23


def test_nuisance_is_per_video_and_pan_moves_the_background():
  a = nuisance.render_video('ring', 'up', 1, 8, 32, pan=False)
  np.testing.assert_array_equal(
      a, nuisance.render_video('ring', 'up', 1, 8, 32, pan=False))
  b = nuisance.render_video('ring', 'up', 2, 8, 32, pan=False)
  assert np.abs(a.astype(int) - b).mean() > 10  # other background, colours
  # The median pixel is background (the object covers < 16% of a frame):
  # first to last frame it changes by the noise alone without pan, by the
  # texture's drift with it.
  changes = {}
  for pan in (False, True):
    frames = nuisance.render_video('circle', 'left', 3, 48, 64,
                                   pan=pan).astype(int)
    changes[pan] = np.median(np.abs(frames[-1] - frames[0]))
  assert changes[False] < 6 and changes[True] > 2 * changes[False], changes


def test_make_synthetic_nuisance_writes_both_labels(tmp_path):
  out = tmp_path / 'n'
  result = run_module('tfrecords_tools.make_synthetic', '--kind=nuisance',
                      f'--output_dir={out}', '--videos_per_class=3',
                      '--val_fraction=0.34', '--num_frames=8', '--size=32')
  assert '96 train and 48 test videos of 6 shapes x 8 directions' in (
      result.stdout)
  with open(out / 'factors.csv') as f:
    factors = list(csv.DictReader(f))
  assert len(factors) == 144
  cells = {(r['shape'], r['direction'], r['split']) for r in factors}
  assert len(cells) == 6 * 8 * 2  # every cell in both splits
  with open(out / 'train.csv') as f:
    train = list(csv.reader(f))[1:]
  by_path = {r['path']: r for r in factors}
  for path, label in train:
    assert by_path[path]['direction'] == label
    assert by_path[path]['split'] == 'train'
    assert path.startswith(f'videos/{label}/{by_path[path]["shape"]}_')
  labels = (out / 'label_map.txt').read_text().split()
  assert labels == list(nuisance.DIRECTION_NAMES)
  decoded = vd.decode_video(os.path.join(out, train[0][0]),
                            vd.DecodeOptions(short_side=0))
  assert len(decoded.frames) == 8 and decoded.frames[0].shape == (32, 32, 3)
