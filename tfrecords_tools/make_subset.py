r"""Writes a class-balanced subset of video TFRecords (semi-supervised splits).

  python -m tfrecords_tools.make_subset \
      --input_path='/data/k400/tfrecords/train-*.tfrecord' --fraction=0.01 \
      --output_dir=/data/k400/tfrecords_1pct --seed=0

Paper section 4.1: "We sample 1% and 10% videos from each class in the
training set, forming two balanced subsets." Each class keeps
round(fraction x its count) videos (at least 1); which ones depends only on
the clip ids and --seed (ids are sorted, then permuted with the seed), so the
same seed gives the same subset whatever the shard order. Writes
train-{i:05d}-of-{n:05d}.tfrecord files and subset_ids.txt.
"""

from absl import app
from absl import flags

from cvrl.data import video_sources
from cvrl.tools import cli
from tfrecords_tools.datasets import subsets

_INPUT_PATH = flags.DEFINE_string(
    'input_path', None, 'TFRecords of the full split (comma-separated globs).')
cli.deprecated_alias('pattern', 'input_path')
_FRACTION = flags.DEFINE_float('fraction', 0.01, 'Share of each class, (0, 1].')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Where to write.')
_SEED = flags.DEFINE_integer('seed', 0, 'Which videos of each class.')
_NUM_SHARDS = flags.DEFINE_integer('num_shards', 8, 'Output shards.')
_SPLIT = flags.DEFINE_string('split', 'train', 'Name of the output split.')


def main(argv):
  del argv
  if not _INPUT_PATH.value or not _OUTPUT_DIR.value:
    raise app.UsageError('--input_path and --output_dir are required')
  try:
    files = video_sources.list_files(_INPUT_PATH.value)
  except video_sources.InputError as e:
    raise app.UsageError(f'--input_path: {e}') from e
  chosen = subsets.make_subset(files, _FRACTION.value, _OUTPUT_DIR.value,
                               _SEED.value, _NUM_SHARDS.value, _SPLIT.value)
  print(f'make_subset: {len(chosen)} videos -> {_OUTPUT_DIR.value}')


def run_main():
  cli.run(main)


if __name__ == '__main__':
  run_main()
