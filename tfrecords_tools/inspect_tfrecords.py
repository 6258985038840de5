r"""Summarises and checks video TFRecords written by `convert_videos`.

  python -m tfrecords_tools.inspect_tfrecords \
      --pattern='/data/k600/tfrecords/train-*.tfrecord' [--verify]

Prints videos per label, frames per video (min / median / max), frame rates
(with a warning and their spread when they differ: clips are counted in
frames) and frame sizes. `--verify` also decodes every JPEG and checks it against the
stored size and frame count. A truncated or corrupt file, an unparsable record
or a bad frame is reported with its shard and record index, and the exit
status is then 1.
"""

import sys

from absl import app
from absl import flags
import tensorflow as tf

from tfrecords_tools.datasets import inspection

_PATTERN = flags.DEFINE_string('pattern', None,
                               'Glob of TFRecord files (local or gs://).')
_VERIFY = flags.DEFINE_bool('verify', False, 'Decode every JPEG frame.')


def main(argv):
  del argv
  if not _PATTERN.value:
    raise app.UsageError('--pattern is required')
  files = sorted(tf.io.gfile.glob(_PATTERN.value))
  if not files:
    print(f'inspect_tfrecords: error: no file matches {_PATTERN.value!r}',
          file=sys.stderr)
    return 2
  report = inspection.inspect_files(files, _VERIFY.value)
  print(report.format())
  return 1 if report.errors else 0


if __name__ == '__main__':
  app.run(main)
