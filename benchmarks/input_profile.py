r"""Where the pretraining input's host time goes, stage by stage.

  .venv/bin/python benchmarks/input_profile.py [--batches=15 --batch_size=8]
      [--rounds=3] [--records='DIR/train-*.tfrecord']

Two-clip samples/s at 16 x 224 x 224, stride 2, the paper's crops, on the
same records (the real test videos at short side 256, as
benchmarks/input_pipeline.py makes them), of the input chain cut after each
phase. A cut keeps the work before it (its output feeds a tiny tensor, so
nothing is pruned) and replaces what follows by a constant of the final
shape. A phase's cost per sample is the difference of 1 / rate between
consecutive cuts. Each pipeline is measured alone (`input_pipeline.
measure_alone`), alternating over --rounds.

  read + parse + sample   records read (block-shuffled), parsed, two clip
                          starts, frames gathered, the crops drawn
  decode crop windows     + decode_and_crop_jpeg of the 2 x 16 windows
  place on the canvas     + each window padded into the uint8 canvas
  batch                   + batching: the whole host part of
                          augment_on=device (`pipelines.build_dataset`)
and, for reference, the same chain with the window resized to 224 on the
host instead of placed (float32; what host mode does before its per-pixel
work, and what the host did in device mode before 2026-11-30), host mode
whole, and the decode-only ceiling of benchmarks/input_pipeline.py.
"""

import argparse
import os
import shutil
import sys
import tempfile

import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top,wrong-import-position
from benchmarks import input_pipeline as bench
from cvrl.data import decoding
from cvrl.data import pipelines
from cvrl.data import spatial_augment
from cvrl.data import window_canvas
# pylint: enable=g-import-not-at-top,wrong-import-position


# A cut sends this small canvas, so that its batching costs nothing.
_CUT_CANVAS = (8, 8)


def _placeholder(config, *used):
  """uint8 zeros of a cut's output shape that depend on `used` (so they
  are not pruned)."""
  token = tf.add_n([tf.cast(tf.reduce_sum(u), tf.float32) for u in used])
  zeros = tf.zeros([config.num_frames, *_CUT_CANVAS, 3], tf.uint8)
  with tf.control_dependencies([token]):
    return tf.identity(zeros)


def cut_view(stage: str, config):
  """A `pipelines.View` that stops after `stage`."""
  canvas_hw = tuple(config.device_canvas)

  def view(encoded, seed, view_config, crop_size, max_area, canvas=None):
    del canvas  # the cut decides
    frame_hw = decoding.frame_shape(encoded[0])
    params = spatial_augment.draw_clip_params(seed, view_config, frame_hw)
    packed = tf.concat([tf.zeros([window_canvas.NUM_WINDOW_PARAMS]),
                        spatial_augment.pack_pixel_params(params)], 0)
    if stage == 'parse':
      frames = _placeholder(config, tf.strings.length(encoded))
      return spatial_augment.PreparedView(frames, packed)
    decoded = decoding.decode_crop(encoded, params.window, max_area,
                                   frame_hw)
    if stage == 'decode':
      frames = _placeholder(config, decoded[:, :1, :1])
    elif stage == 'resize':
      resized = tf.image.resize(decoded, [crop_size, crop_size])
      frames = _placeholder(config, resized[:, :1, :1])
    elif stage == 'resized_uint8':  # the whole view, sent resized
      resized = tf.image.resize(decoded, [crop_size, crop_size])
      return spatial_augment.PreparedView(
          tf.saturate_cast(tf.round(resized), tf.uint8), packed)
    else:  # 'canvas'
      placed, _ = window_canvas.place(decoded, canvas_hw)
      frames = _placeholder(config, placed[:, :1, :1])
    return spatial_augment.PreparedView(frames, packed)
  return view


def cut_pipeline(pattern, batch_size, stage):
  real = bench.ours_config(pattern, batch_size, 'device')
  sent = ((bench.SIZE, bench.SIZE) if stage == 'resized_uint8'
          else _CUT_CANVAS)
  config = real.replace(device_canvas=sent)
  steps = pipelines.pretrain_steps(config)
  steps = pipelines.PretrainSteps(steps.clip_starts, cut_view(stage, real))
  dataset = pipelines.source_dataset(config).enumerate()
  dataset = dataset.map(
      lambda position, example: pipelines.pretrain_views(
          example, pipelines.example_seed(0, 0, position), config, steps),
      num_parallel_calls=tf.data.AUTOTUNE)
  return dataset.batch(batch_size, drop_remainder=True).prefetch(
      tf.data.AUTOTUNE)


CUTS = (
    ('read + parse + sample', lambda p, b: cut_pipeline(p, b, 'parse')),
    ('decode crop windows', lambda p, b: cut_pipeline(p, b, 'decode')),
    ('place on the canvas', lambda p, b: cut_pipeline(p, b, 'canvas')),
    ('batch', bench.ours_device_mode),
)
OTHERS = (
    ('decode + resize to 224 instead', lambda p, b: cut_pipeline(
        p, b, 'resize')),
    ('decode + resize + uint8, batched', lambda p, b: cut_pipeline(
        p, b, 'resized_uint8')),
    ('host mode, whole', bench.ours),
    ('decode whole frames (ceiling)', bench.decode_ceiling),
)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--batches', type=int, default=15)
  parser.add_argument('--batch_size', type=int, default=8)
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--repeats', type=int, default=2)
  parser.add_argument('--records', default='',
                      help='a glob of records to reuse (default: make them)')
  args = parser.parse_args()
  work = tempfile.mkdtemp(prefix='input_profile_')
  try:
    pattern = args.records or bench.make_records(work, args.repeats)
    runs = dict(CUTS + OTHERS)
    rate = bench.measure_alone(runs, pattern, args.batch_size, args.batches,
                               args.rounds)
    print(f'two-clip samples/s at {bench.NUM_FRAMES}x{bench.SIZE}x'
          f'{bench.SIZE}, batch {args.batch_size}, {args.rounds} x '
          f'{args.batches} batches per cut, {os.cpu_count()} cores')
    total = 1000.0 / rate[CUTS[-1][0]]
    previous = 0.0
    print(f'  {"cut after":32s} {"samples/s":>10s} {"ms/sample":>10s} '
          f'{"phase ms":>9s} {"share":>6s}')
    for name, _ in CUTS:
      ms = 1000.0 / rate[name]
      print(f'  {name:32s} {rate[name]:10.2f} {ms:10.1f} '
            f'{ms - previous:9.1f} {(ms - previous) / total:6.0%}')
      previous = ms
    ceiling = rate[OTHERS[-1][0]]
    for name, _ in OTHERS:
      print(f'  {name:32s} {rate[name]:10.2f} {1000.0 / rate[name]:10.1f}')
    print(f'augment_on=device, host part: {rate[CUTS[-1][0]] / ceiling:.2f} '
          'of the decode ceiling')
  finally:
    shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
  main()
