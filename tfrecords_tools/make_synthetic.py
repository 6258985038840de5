r"""Writes a small synthetic action dataset as real mp4 files plus CSVs.

  python -m tfrecords_tools.make_synthetic --output_dir=/tmp/synthetic \
      --videos_per_class=40

See `tfrecords_tools.datasets.synthetic` for what the videos show. Output:
videos/<class>/<class>_<k>.mp4, train.csv and val.csv (`path,label`, paths
relative to --output_dir), label_map.txt. The same --seed gives the same videos.

--kind=nuisance writes the factor-controlled set of
`tfrecords_tools.datasets.nuisance` instead (object shape x motion direction
on per-video backgrounds; --videos_per_class is then videos per (shape,
direction) pair; train.csv / test.csv, factors.csv with both labels):

  python -m tfrecords_tools.make_synthetic --kind=nuisance \
      --output_dir=/tmp/nuisance --videos_per_class=20 --val_fraction=0.33
"""

import time

from absl import app
from absl import flags

from tfrecords_tools.datasets import nuisance
from tfrecords_tools.datasets import synthetic
from cvrl.tools import cli

_KIND = flags.DEFINE_enum(
    'kind', 'motion', ['motion', 'nuisance'],
    'motion: 8 motion classes (the demo); nuisance: shape x direction on '
    'per-video backgrounds (the learning-quality benchmark).')
_PAN = flags.DEFINE_bool('pan', True,
                         'nuisance: the background pans (a moving camera).')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Where to write.')
_VIDEOS_PER_CLASS = flags.DEFINE_integer('videos_per_class', 40,
                                         'Videos of each class.')
_VAL_FRACTION = flags.DEFINE_float('val_fraction', 0.25,
                                   'Share of each class put in val.csv.')
_NUM_FRAMES = flags.DEFINE_integer('num_frames', 48, 'Frames per video.')
_SIZE = flags.DEFINE_integer('size', 64, 'Frame width and height (even).')
_FPS = flags.DEFINE_integer('fps', 12, 'Frame rate of the files.')
_SEED = flags.DEFINE_integer('seed', 0, 'Random seed.')
_APPEARANCES = flags.DEFINE_integer(
    'appearances', 0,
    'Draw textures from this many (background, object) pairs shared by all '
    'videos, so only motion tells videos apart; 0: every video its own.')


def main(argv):
  del argv
  if not _OUTPUT_DIR.value:
    raise app.UsageError('--output_dir is required')
  start = time.time()
  if _KIND.value == 'nuisance':
    splits = nuisance.make_dataset(
        _OUTPUT_DIR.value, _VIDEOS_PER_CLASS.value, _VAL_FRACTION.value,
        _NUM_FRAMES.value, _SIZE.value, _FPS.value, _SEED.value,
        pan=_PAN.value)
    held_out = 'test'
    classes = (f'{len(nuisance.SHAPES)} shapes x {len(nuisance.DIRECTIONS)} '
               'directions')
  else:
    splits = synthetic.make_dataset(
        _OUTPUT_DIR.value, _VIDEOS_PER_CLASS.value, _VAL_FRACTION.value,
        _NUM_FRAMES.value, _SIZE.value, _FPS.value, _SEED.value,
        appearances=_APPEARANCES.value)
    held_out = 'val'
    classes = f'{len(synthetic.CLASSES)} classes'
  print(f'make_synthetic: {len(splits["train"])} train and '
        f'{len(splits[held_out])} {held_out} videos of {classes} in '
        f'{time.time() - start:.1f}s -> {_OUTPUT_DIR.value}')

def run_main():
  cli.run(main)


if __name__ == '__main__':
  run_main()
