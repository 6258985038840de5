r"""Where the pretraining input's host time goes, phase by phase.

  .venv/bin/python benchmarks/input_profile.py [--batches=15 --batch_size=8]
      [--rounds=3] [--records='DIR/train-*.tfrecord']

Two-clip samples/s at 16 x 224 x 224, stride 2, the paper's crops, on the
same records (the real test videos at short side 256, as
benchmarks/input_pipeline.py makes them), of augment_on=device's host part
cut after each phase. A cut keeps the work before it and hands on only a
small tensor that depends on it (so nothing is pruned). A phase's cost per
sample is the difference of 1 / rate between consecutive cuts. Each
pipeline is measured alone (`input_pipeline.measure_alone`), alternating
over --rounds.

  read + parse + sample + batch   records read (shuffled), parsed, two
                                  clip starts, frames gathered and checked,
                                  the crops drawn, batched (strings)
  decode crop windows             + decode_and_crop_jpeg of every window of
                                  the batch, nothing kept
  write the buffer                + each window written into the batch's
                                  buffer: the whole host part
                                  (`pipelines.build_dataset`)
and, for reference, host mode whole and the decode-only ceiling of
benchmarks/input_pipeline.py.
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
from cvrl.data import pipelines
from cvrl.data import window_buffer
# pylint: enable=g-import-not-at-top,wrong-import-position


def _decoded_bytes(batch, config, budget):
  """Decodes every window of a device-mode batch before packing; returns
  only how many bytes they hold."""
  encoded = tf.reshape(batch[pipelines.ENCODED], [-1])
  frames_per_view = batch[pipelines.ENCODED].shape[-1]
  draws = tf.reshape(batch[pipelines.VIEW_DRAWS],
                     [-1, batch[pipelines.VIEW_DRAWS].shape[-1]])
  draws = tf.cast(draws[:, :window_buffer.NUM_DRAW_FIELDS], tf.int32)
  # Each window as the whole host part decodes it (`window_buffer.pack`).
  left = window_buffer.plan(draws, frames_per_view,
                            tuple(config.device_canvas), budget).left

  def body(i, total):
    window = window_buffer.decode_frame(encoded, draws, left,
                                        frames_per_view, i)
    return i + 1, total + tf.size(window)
  _, total = tf.while_loop(lambda i, _: i < tf.size(encoded), body, (0, 0))
  return total


def cut_pipeline(pattern, batch_size, stage):
  config = bench.ours_config(pattern, batch_size, 'device')
  dataset = pipelines.source_dataset(config).enumerate()
  dataset = dataset.map(
      lambda position, example: pipelines.pretrain_views(
          example, pipelines.example_seed(0, 0, position), config),
      num_parallel_calls=tf.data.AUTOTUNE)
  dataset = dataset.batch(batch_size, drop_remainder=True)
  if stage == 'parse':
    dataset = dataset.map(lambda b: tf.strings.length(b[pipelines.ENCODED]))
  else:  # 'decode'
    budget = pipelines.device_budget(config, batch_size)
    dataset = dataset.map(lambda b: _decoded_bytes(b, config, budget),
                          num_parallel_calls=tf.data.AUTOTUNE)
  return dataset.prefetch(tf.data.AUTOTUNE)


CUTS = (
    ('read + parse + sample + batch', lambda p, b: cut_pipeline(
        p, b, 'parse')),
    ('decode crop windows', lambda p, b: cut_pipeline(p, b, 'decode')),
    ('write the buffer', bench.ours_device_mode),
)
OTHERS = (
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
  bench.add_malloc_flag(parser)
  args = parser.parse_args()
  bench.apply_malloc_flag(args)
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
