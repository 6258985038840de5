r"""How often `augment_on: device` shrinks a batch's crop windows to fit the
buffer, per per-replica batch and device_budget.

  python benchmarks/window_shrink.py [--draws=40000] [--frame=256x455]
      [--batches=1,2,4,8,16] [--budgets=0.6,0.7,0.8,0.9,1.0] [--resample=1000000]

A batch's windows are shrunk on the host (a departure from Algorithm 1 for
every view of it; counted by the `windows_shrunk` metric) when its views
need more bytes than `device_budget` of the buffer
(`cvrl.data.window_buffer.plan`). Views are drawn with the real
`spatial_augment.sample_crop_window` of the paper's crop (area [0.3, 1],
aspect [0.5, 2]) on frames of --frame (Kinetics at short side 256 is 256 x
455 for 16:9); each view's stored bytes come from `window_buffer.plan`
itself (with an unbounded budget: a view's bytes do not depend on the
others), then batches of 2 x B views are resampled from them and a batch is
shrunk when its bytes exceed the budget, as `plan` decides. Prints the rate
(1 in N batches) and, for the paper's batch of 1024 spread over 64-256
replicas, the expected number of shrunk replica-batches per step and per
1,000 steps; and the buffer bytes a budget costs per replica-batch.
"""

import argparse
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

# pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf

from cvrl.configs import video_data
from cvrl.data import spatial_augment
from cvrl.data import window_buffer


def view_bytes(draws: int, height: int, width: int, frames: int,
               canvas, seed: int = 0) -> np.ndarray:
  """Stored bytes of `draws` views of the paper's crop on one frame size."""
  view = video_data.ViewAugmentationConfig()

  @tf.function
  def window(s):
    return spatial_augment.sample_crop_window(
        s, height, width, tuple(view.crop_area_range),
        tuple(view.crop_aspect_range))
  seeds = tf.random.stateless_uniform([draws, 2], [seed, 1], maxval=2**31 - 1,
                                      dtype=tf.int32)
  windows = tf.map_fn(window, seeds, fn_output_signature=tf.int32)
  # Cropped decodes (the JPEG-column extra columns), as the pipeline does.
  rows = tf.concat([windows, tf.ones([draws, 1], tf.int32)], axis=1)
  placed = window_buffer.plan(rows, frames, canvas, budget=2**62)
  return window_buffer.view_bytes_of(frames, placed.height, placed.width,
                                     placed.left).numpy().astype(np.int64)


def shrink_rates(per_view: np.ndarray, batches, budgets, frames: int, canvas,
                 resample: int, seed: int = 0):
  """{(batch, budget): fraction of resampled batches over the budget}."""
  rng = np.random.default_rng(seed)
  rates = {}
  for batch in batches:
    sums = per_view[rng.integers(0, len(per_view),
                                 (resample, 2 * batch))].sum(axis=1)
    for budget in budgets:
      limit = window_buffer.budget_bytes(batch, frames, canvas, budget)
      rates[batch, budget] = float(np.mean(sums > limit))
  return rates


def _one_in(rate: float, resample: int) -> str:
  if rate == 0:
    return f'< 1 in {resample:,}'
  return f'1 in {1 / rate:,.0f}'


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--draws', type=int, default=40000)
  parser.add_argument('--frame', default='256x455', help='HxW of the frames')
  parser.add_argument('--frames', type=int, default=16)
  parser.add_argument('--batches', default='1,2,4,8,16')
  parser.add_argument('--budgets', default='0.6,0.7,0.8,0.9,1.0')
  parser.add_argument('--resample', type=int, default=1_000_000)
  args = parser.parse_args()
  height, width = (int(v) for v in args.frame.split('x'))
  data = video_data.VideoDataConfig()
  canvas = tuple(data.device_canvas)
  batches = [int(b) for b in args.batches.split(',')]
  budgets = [float(b) for b in args.budgets.split(',')]
  per_view = view_bytes(args.draws, height, width, args.frames, canvas)
  full = args.frames * canvas[0] * canvas[1] * 3
  fill = per_view / full
  print(f'{args.draws} views of {height}x{width} frames, canvas '
        f'{canvas[0]}x{canvas[1]}: fill mean {fill.mean():.3f}, sd '
        f'{fill.std():.3f}, max {fill.max():.3f}')
  rates = shrink_rates(per_view, batches, budgets, args.frames, canvas,
                       args.resample)
  print('\nshrunk batches (rate per replica-batch), per-replica batch x '
        'device_budget:')
  print('| per-replica batch | ' + ' | '.join(f'budget {b:g}'
                                             for b in budgets) + ' |')
  print('|---' * (len(budgets) + 1) + '|')
  for batch in batches:
    print(f'| {batch} | ' + ' | '.join(
        _one_in(rates[batch, b], args.resample) for b in budgets) + ' |')
  print('\nbatch 1024 over R replicas: replica-batches shrunk per 1,000 '
        'steps (R x rate x 1000):')
  for replicas in (64, 128, 256):
    batch = 1024 // replicas
    if batch not in batches:
      continue
    print(f'  {replicas} replicas (batch {batch} each): ' + ', '.join(
        f'budget {b:g}: {replicas * rates[batch, b] * 1000:.1f}'
        for b in budgets))
  print('\nbuffer per replica-batch (MB): ' + ', '.join(
      f'batch {batch}: ' + '/'.join(
          f'{window_buffer.budget_bytes(batch, args.frames, canvas, b) / 1e6:.0f}'
          for b in budgets) for batch in batches))


if __name__ == '__main__':
  main()
