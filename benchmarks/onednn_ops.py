r"""What oneDNN changes in the pretraining input, op by op: ours vs Model Garden.

  .venv/bin/python benchmarks/onednn_ops.py [--repeats=20]

TensorFlow turns its oneDNN kernels on by default on x86 CPUs with
AVX512_VNNI / AVX512_BF16 / AMX (current Intel Xeons); elsewhere they are
off. This runs the same measurement twice, in child processes with
TF_ENABLE_ONEDNN_OPTS=1 and =0, and prints each op's core-ms for one
16-frame clip (two clips make a sample) under both, on one clip cut from
JPEG frames of the size the converter writes (short side 256):

  Model Garden (`official.projects.video_ssl` and `official.vision.ops.
  preprocess_ops_3d`): decode whole frames, random crop + resize, colour
  jitter (p = 1 here), the Gaussian blur (depthwise_conv2d, which its input
  runs on every clip and then keeps with probability 0.5);
  ours (`cvrl.data`): decode only the crop window, resize, then the
  per-pixel part as one XLA computation (identity, colour jitter only, blur
  only, both).

A core-ms is one CPU busy for a millisecond (process time / repeats).
"""

import argparse
import json
import os
import subprocess
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
T, SIZE, HEIGHT, WIDTH = 16, 224, 256, 340
WINDOW = (20, 30, 180, 240)  # y, x, h, w: a 44% area crop


def _core_ms(fn, repeats):
  fn()
  start = time.process_time()
  for _ in range(repeats):
    out = fn()
  if hasattr(out, 'numpy'):
    out.numpy()
  return (time.process_time() - start) / repeats * 1000


def measure(repeats: int) -> dict:
  """Core-ms a clip of each op in this process."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, os.path.dirname(_HERE))
  from cvrl.data import spatial_augment as ours  # pylint: disable=g-import-not-at-top
  from official.projects.video_ssl.ops import video_ssl_preprocess_ops as mg  # pylint: disable=g-import-not-at-top
  from official.vision.ops import preprocess_ops_3d as mg3d  # pylint: disable=g-import-not-at-top

  smooth = tf.image.resize(tf.random.stateless_uniform(
      [T, 32, 43, 3], seed=[0, 1]) * 255, [HEIGHT, WIDTH])
  jpegs = tf.stack([tf.io.encode_jpeg(tf.cast(f, tf.uint8), quality=90)
                    for f in smooth])
  frames = tf.cast(smooth, tf.float32) / 255.0
  window = tf.constant(WINDOW)

  def params(**on):
    values = []
    for field in ours.PIXEL_FIELDS:
      value = on.get(field.name, field.identity)
      values += list(value) if isinstance(value, tuple) else [value]
    return tf.constant(values, tf.float32)
  jitter = dict(jitter=1., brightness=1.2, contrast=0.8, saturation=1.3,
                hue=0.05)
  blur = dict(blur=1., sigma=1.0)
  cropped = tf.map_fn(
      lambda e: tf.image.decode_and_crop_jpeg(e, window, channels=3), jpegs,
      fn_output_signature=tf.TensorSpec([WINDOW[2], WINDOW[3], 3], tf.uint8))
  resized = tf.image.resize(cropped, [SIZE, SIZE], method='bilinear')
  clip = tf.image.resize(frames, [SIZE, SIZE])
  ops = {
      'Model Garden: decode whole frames': tf.function(
          lambda: mg3d.decode_jpeg(jpegs, 3)),
      'Model Garden: random crop + resize': tf.function(
          lambda: mg3d.random_crop_resize(frames, SIZE, SIZE, T, 3, (0.5, 2),
                                          (0.3, 1))),
      'Model Garden: colour jitter': tf.function(
          lambda: mg.color_jitter(clip, 1.0)),
      'Model Garden: Gaussian blur (depthwise_conv2d)': tf.function(
          lambda: mg.gaussian_blur(clip, SIZE // 10, 1.0)),
      'ours: decode the crop window': tf.function(
          lambda: tf.map_fn(
              lambda e: tf.image.decode_and_crop_jpeg(e, window, channels=3),
              jpegs, fn_output_signature=tf.TensorSpec(
                  [WINDOW[2], WINDOW[3], 3], tf.uint8))),
      'ours: resize': tf.function(
          lambda: tf.image.resize(cropped, [SIZE, SIZE], method='bilinear')),
      'ours: per-pixel part, identity (XLA)': (
          lambda p=params(): ours.apply_prepared_xla(resized, p)),
      'ours: per-pixel part, colour jitter (XLA)': (
          lambda p=params(**jitter): ours.apply_prepared_xla(resized, p)),
      'ours: per-pixel part, blur (XLA)': (
          lambda p=params(**blur): ours.apply_prepared_xla(resized, p)),
      'ours: per-pixel part, jitter + blur (XLA)': (
          lambda p=params(**jitter, **blur): ours.apply_prepared_xla(
              resized, p)),
  }
  return {name: _core_ms(fn, repeats) for name, fn in ops.items()}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--repeats', type=int, default=20)
  parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    print(json.dumps(measure(args.repeats)))
    return
  results = {}
  for flag in ('1', '0'):
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=flag,
               TF_CPP_MIN_LOG_LEVEL='2')
    done = subprocess.run([sys.executable, os.path.abspath(__file__),
                           '--child', f'--repeats={args.repeats}'],
                          env=env, capture_output=True, text=True,
                          check=False, timeout=1800)
    if done.returncode:
      sys.exit(f'TF_ENABLE_ONEDNN_OPTS={flag}: {done.stderr[-2000:]}')
    results[flag] = json.loads(done.stdout.strip().splitlines()[-1])
  print(f'core-ms for one {T}-frame clip at {SIZE} x {SIZE} (frames '
        f'{HEIGHT} x {WIDTH}), {os.cpu_count()} cores')
  print(f'{"op":50s} {"oneDNN on":>10s} {"off":>8s} {"off/on":>7s}')
  for name in results['1']:
    on, off = results['1'][name], results['0'][name]
    print(f'{name:50s} {on:10.1f} {off:8.1f} {off / on:7.2f}')


if __name__ == '__main__':
  main()
