r"""Summarises and checks video TFRecords written by `convert_videos`.

  python -m tfrecords_tools.inspect_tfrecords \
      --input_path='/data/k600/tfrecords/train-*.tfrecord' [--verify]

Prints videos per label, frames per video (min / median / max), frame rates
(with a warning and their spread when they differ: clips are counted in
frames) and frame sizes. `--verify` also decodes every JPEG and checks it against the
stored size and frame count. A truncated or corrupt file, an unparsable record
or a bad frame is reported with its shard and record index, and the exit
status is then 1.

Records made by other tools (Model Garden's or DMVR's converters) carry no
record index; `--write_index` counts their records once, from the length
headers, and writes `record_index.json` into each folder, so that training
jobs read the counts instead of scanning (`cvrl.data.record_index`):

  python -m tfrecords_tools.inspect_tfrecords \
      --input_path='gs://BUCKET/k400/dmvr/train-*' --write_index

AVA keyframe records of `convert_ava` (boxes and proposals per keyframe,
actions per box, one keyframe drawn with its boxes as a PNG):

  python -m tfrecords_tools.inspect_tfrecords --ava \
      --input_path='/data/ava/tfrecords/train/train-*.tfrecord' \
      --label_map=ava_action_list_v2.2.pbtxt --draw_keyframe=/tmp/kf.png
"""

import sys

from absl import app
from absl import flags
import tensorflow as tf

from cvrl.data import ava_files
from cvrl.data import record_index
from cvrl.data import video_sources
from tfrecords_tools.datasets import ava_inspection
from tfrecords_tools.datasets import inspection
from cvrl.tools import cli

_INPUT_PATH = flags.DEFINE_string(
    'input_path', None, 'TFRecords: comma-separated globs (local or gs://).')
cli.deprecated_alias('pattern', 'input_path')
_VERIFY = flags.DEFINE_bool('verify', False, 'Decode every JPEG frame.')
_AVA = flags.DEFINE_bool('ava', False, 'The records are convert_ava '
                         'keyframes: also report boxes and actions.')
_LABEL_MAP = flags.DEFINE_string('label_map', None,
                                 '--ava: action names (.pbtxt or one name a line).')
_DRAW_KEYFRAME = flags.DEFINE_string(
    'draw_keyframe', None, '--ava: write a keyframe with its boxes here (PNG).')
_DRAW_INDEX = flags.DEFINE_integer(
    'draw_index', 0, '--ava: which record (in file order) to draw.')
_WRITE_INDEX = flags.DEFINE_bool(
    'write_index', False, 'Count the records from their headers and write '
    'record_index.json into each folder (then stop).')


def write_index(files) -> int:
  """--write_index: header counts of `files` into their folders' indexes."""
  try:
    counted = dict(zip(files, map(video_sources.count_records, files)))
  except video_sources.InputError as e:
    print(f'inspect_tfrecords: error: {e}', file=sys.stderr)
    return 1
  for path in record_index.index_folders(files, counted):
    print(f'inspect_tfrecords: wrote {path}')
  print(f'inspect_tfrecords: {sum(counted.values())} records in '
        f'{len(files)} files')
  return 0


def main(argv):
  del argv
  if not _INPUT_PATH.value:
    raise app.UsageError('--input_path is required')
  files = sorted(tf.io.gfile.glob(_INPUT_PATH.value))
  if not files:
    print(f'inspect_tfrecords: error: no file matches {_INPUT_PATH.value!r}',
          file=sys.stderr)
    return 2
  if _WRITE_INDEX.value:
    return write_index(files)
  if not _AVA.value:
    report = inspection.inspect_files(files, _VERIFY.value)
    print(report.format())
    return 1 if report.errors else 0
  names = (ava_files.read_label_map(_LABEL_MAP.value) if _LABEL_MAP.value
           else {})
  report = ava_inspection.inspect_files(files, _VERIFY.value)
  print(report.format(names))
  if _DRAW_KEYFRAME.value:
    records = tf.data.TFRecordDataset(files).skip(_DRAW_INDEX.value).take(1)
    drawn = list(records.as_numpy_iterator())
    if not drawn:
      print(f'inspect_tfrecords: error: --draw_index={_DRAW_INDEX.value} is '
            f'past the last of {report.video.videos} records', file=sys.stderr)
      return 2
    key = ava_inspection.draw_keyframe(drawn[0], _DRAW_KEYFRAME.value, names)
    print(f'keyframe {key} with its boxes: {_DRAW_KEYFRAME.value}')
  return 1 if report.errors else 0


def run_main():
  cli.run(main)


if __name__ == '__main__':
  run_main()
