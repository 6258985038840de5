r"""The R3D stem on CPU: Keras Conv3D against `tap_conv3d.TapConv3D`.

  .venv/bin/python benchmarks/stem_conv.py [--size=32] [--clips=16,32,64]
      [--frames=15,16] [--repeats=2]

Times the forward pass and the filter gradient of the stem (5 x 7 x 7,
stride 2, 3 -> 64w channels, 'same') for each number of clips and frames,
in the same process, best of --repeats after one warm-up call each, and
prints the ratio. Conv3D is what Model Garden's and a plain Keras R3D run;
TapConv3D is what `r3d` builds when no GPU or TPU is visible. The largest
difference of the two outputs is printed too (float32 rounding).
"""

import argparse
import os
import sys
import time

import tensorflow as tf
import tf_keras

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from cvrl.modeling import tap_conv3d  # pylint: disable=g-import-not-at-top,wrong-import-position


def seconds(layer, clips, repeats):
  """Best time of forward + filter gradient over `repeats` calls."""
  @tf.function
  def step(x):
    with tf.GradientTape() as tape:
      y = layer(x)
    return y, tape.gradient(y, layer.kernel)
  step(clips)
  best = float('inf')
  for _ in range(repeats):
    start = time.perf_counter()
    step(clips)
    best = min(best, time.perf_counter() - start)
  return best, step(clips)[0]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--size', type=int, default=32)
  parser.add_argument('--filters', type=int, default=16,
                      help='64 x the width multiplier (demo: 0.25).')
  parser.add_argument('--clips', default='16,32,64')
  parser.add_argument('--frames', default='15,16')
  parser.add_argument('--repeats', type=int, default=2)
  args = parser.parse_args()
  print(f'stem 5x7x7 stride 2, 3 -> {args.filters} channels, '
        f'{args.size}x{args.size} frames, {os.cpu_count()} cores: forward + '
        'filter gradient, s')
  for clips in (int(c) for c in args.clips.split(',')):
    for frames in (int(f) for f in args.frames.split(',')):
      x = tf.random.stateless_uniform([clips, frames, args.size, args.size,
                                       3], [clips, frames])
      kwargs = dict(filters=args.filters, kernel_size=(5, 7, 7),
                    strides=(2, 2, 2), padding='same', use_bias=False)
      plain = tf_keras.layers.Conv3D(**kwargs)
      taps = tap_conv3d.TapConv3D(**kwargs)
      plain.build(x.shape)
      taps.build(x.shape)
      taps.kernel.assign(plain.kernel)
      plain_s, plain_y = seconds(plain, x, args.repeats)
      taps_s, taps_y = seconds(taps, x, args.repeats)
      error = float(tf.reduce_max(tf.abs(plain_y - taps_y)))
      print(f'  {clips:3d} clips x {frames:2d} frames: Conv3D {plain_s:7.3f}'
            f'  TapConv3D {taps_s:6.3f}  ratio {plain_s / taps_s:6.1f}x  '
            f'max |difference| {error:.1e}', flush=True)


if __name__ == '__main__':
  main()
