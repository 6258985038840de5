r"""Writes a small synthetic AVA (movies + annotation files in AVA's formats).

  python -m tfrecords_tools.make_synthetic_ava --output_dir=/tmp/syn_ava \
      --train_movies=12 --val_movies=4

See `tfrecords_tools.datasets.synthetic_ava` for what the movies show and the
files written; convert them with `tfrecords_tools.convert_ava` exactly as
the real AVA.
"""

import time

from absl import app
from absl import flags

from tfrecords_tools.datasets import synthetic_ava
from cvrl.tools import cli

_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Where to write.')
_TRAIN_MOVIES = flags.DEFINE_integer('train_movies', 12, 'Training movies.')
_VAL_MOVIES = flags.DEFINE_integer('val_movies', 4, 'Validation movies.')
_SECONDS = flags.DEFINE_float(
    'seconds', 14.0, 'Length of each movie; keyframes every second from AVA '
    'second 902 to the end minus 2 s.')
_FPS = flags.DEFINE_integer('fps', 10, 'Frame rate of the movies.')
_HEIGHT = flags.DEFINE_integer('height', 64, 'Frame height (even).')
_WIDTH = flags.DEFINE_integer('width', 96, 'Frame width (even).')
_SEED = flags.DEFINE_integer('seed', 0, 'Random seed.')


def main(argv):
  del argv
  if not _OUTPUT_DIR.value:
    raise app.UsageError('--output_dir is required')
  if _SECONDS.value < 5:
    raise app.UsageError(f'--seconds must be >= 5, got {_SECONDS.value}')
  start = time.time()
  counts = synthetic_ava.make_dataset(
      _OUTPUT_DIR.value, {'train': _TRAIN_MOVIES.value,
                          'val': _VAL_MOVIES.value},
      _SECONDS.value, _FPS.value, _HEIGHT.value, _WIDTH.value, _SEED.value)
  print(f'make_synthetic_ava: {_TRAIN_MOVIES.value} train and '
        f'{_VAL_MOVIES.value} val movies, {counts["train"]} and '
        f'{counts["val"]} keyframes, in {time.time() - start:.1f}s -> '
        f'{_OUTPUT_DIR.value}')


def run_main():
  cli.run(main)


if __name__ == '__main__':
  run_main()
