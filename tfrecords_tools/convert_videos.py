r"""Converts a video dataset into sharded TFRecords of tf.train.SequenceExample.

Kinetics (annotation CSV + a folder of downloaded clips, any layout):

  python -m tfrecords_tools.convert_videos \
      --input_csv=kinetics600/train.csv --video_root=/data/k600/videos \
      --output_dir=/data/k600/tfrecords --num_shards=1024

Generic `path,label` CSV, or a folder tree root/<class>/<video>:

  python -m tfrecords_tools.convert_videos --input_csv=ucf101_train.csv \
      --video_root=/data/UCF-101 --split=train --output_dir=/data/ucf_tfr
  python -m tfrecords_tools.convert_videos --video_root=/data/my_videos \
      --split=train --output_dir=/data/my_tfr

UCF-101 / HMDB-51 official splits, from the datasets' split files (one
output folder per split; both its train and test videos are written):

  python -m tfrecords_tools.convert_videos --split_files=ucf101 \
      --split_dir=/data/ucfTrainTestlist --split_number=1 \
      --video_root=/data/UCF-101 --output_dir=/data/ucf101/split1
  python -m tfrecords_tools.convert_videos --split_files=hmdb51 \
      --split_dir=/data/testTrainMulti_7030_splits --split_number=1 \
      --video_root=/data/hmdb51 --output_dir=/data/hmdb51/split1

At scale, the same per-video function runs on Apache Beam; Beam's own options
follow, with Beam's `--runner` spelled `--beam_runner`:

  python -m tfrecords_tools.convert_videos --runner=beam ... \
      --beam_runner=DataflowRunner --project=P --region=R --temp_location=gs://..

Output in --output_dir: `{split}-{i:05d}-of-{n:05d}.tfrecord`, `label_map.txt`,
`manifest.jsonl` (one row per video with its status), `conversion.json`.
Bad videos are counted in the manifest and the summary, never fatal; a
video whose conversion process dies (OOM, a codec crash) or passes its
--deadline is retried alone and, if that fails again, recorded as
`worker_died` or `timeout`. Killing the job and
running the same command again finishes it with byte-identical output,
keeping finished shards (their failed videos too, unless a missing file
appeared or a file changed since; --retry_failed converts them again,
except videos still missing; --retry_all_failed those too).
Exit status is non-zero for a usage error (2), when no video at all was
converted (1), or with --strict when any video failed (3).
"""

import os
import sys

from absl import app
from absl import flags

from cvrl import files
from tfrecords_tools.conversion import deadlines
from tfrecords_tools.conversion import job
from tfrecords_tools.conversion import rerun
from tfrecords_tools.conversion import shards
from tfrecords_tools.conversion import sources
from tfrecords_tools.conversion import split_files
from tfrecords_tools.conversion import video_frames
from tfrecords_tools.conversion import decoder
from cvrl.tools import cli

_INPUT_CSV = flags.DEFINE_string(
    'input_csv', None,
    'Annotation CSV. A header "label,youtube_id,time_start,time_end,split'
    '[,is_cc]" means Kinetics; otherwise rows are "path,label" (optional '
    'header). Without it, --video_root is read as root/<class>/<video>.')
_VIDEO_ROOT = flags.DEFINE_string(
    'video_root', None,
    'Folder holding the videos. Kinetics: searched recursively for '
    '{youtube_id}_{start:06d}_{end:06d}.{ext} (trimmed) or {youtube_id}.{ext} '
    '(untrimmed, cut to [time_start, time_end]). path,label CSV: relative '
    'paths are resolved under it.')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None,
                                  'Where to write shards (local or gs://).')
_SPLIT = flags.DEFINE_string(
    'split', 'train',
    'Split name for path,label CSVs and folder trees (Kinetics CSVs carry '
    'their own split column).')
_LABEL_MAP = flags.DEFINE_string(
    'label_map', None,
    'Existing label_map.txt (one class per line, index = line number) to '
    'reuse so that splits and datasets agree. Default: the sorted set of '
    'labels in the input.')
_FPS = flags.DEFINE_float(
    'fps', 0.0, 'Resample to this frame rate; 0 keeps the source rate.')
_SHORT_SIDE = flags.DEFINE_integer(
    'short_side', 256,
    'Resize frames so the shorter side has this many pixels; 0 keeps size.')
_JPEG_QUALITY = flags.DEFINE_integer('jpeg_quality', 90,
                                     'JPEG quality of stored frames, 1-100.')
_NUM_SHARDS = flags.DEFINE_integer(
    'num_shards', 8, 'Shards per split (fewer if the split has fewer videos).')
_WORKERS = flags.DEFINE_integer(
    'workers', 0, 'Decoding processes for --runner=local; 0 means all cores.')
_DEADLINE = flags.DEFINE_string(
    'deadline', 'auto',
    'Time a worker may spend on one video before it is ended: auto (120 s '
    '+ 10 s a second of video converted, counted from the file\'s opening), '
    'none, or a number of seconds. Workers only: --workers=1 converts in '
    'this process, without a deadline.')
_RUNNER = flags.DEFINE_enum(
    'runner', 'local', ['local', 'beam'],
    'local: a process pool on this machine. beam: an Apache Beam pipeline '
    '(DirectRunner unless --beam_runner says otherwise).')
_BEAM_RUNNER = flags.DEFINE_string(
    'beam_runner', None,
    'Beam runner, e.g. DataflowRunner; other unknown flags go to Beam.')
_KEEP_PARTIAL = flags.DEFINE_bool(
    'keep_partial', False,
    'Keep the frames decoded before a decoding error (status ok, error noted '
    'in the manifest) instead of marking the video corrupt.')
_SPLIT_FILES = flags.DEFINE_enum(
    'split_files', None, ['ucf101', 'hmdb51'],
    'Read an official split from the dataset\'s own files in --split_dir '
    '(UCF-101: classInd.txt, trainlist0N.txt, testlist0N.txt; HMDB-51: '
    '<class>_test_splitN.txt) and write its train and test splits.')
_SPLIT_DIR = flags.DEFINE_string('split_dir', None,
                                 'Folder of the split files (--split_files).')
_SPLIT_NUMBER = flags.DEFINE_integer('split_number', 1,
                                     'Official split, 1-3 (--split_files).')
_MIN_FRAMES = flags.DEFINE_integer(
    'min_frames', 1, 'Videos with fewer decoded frames are too_short.')

_OVERWRITE = flags.DEFINE_bool(
    'overwrite', False, 'Convert into an --output_dir that holds a '
    'conversion of other videos, labels or options (shards whose inputs are '
    'unchanged are kept); without it such a rerun is refused.')
_RETRY_FAILED = flags.DEFINE_bool(
    'retry_failed', False, 'Convert again the shards with videos an earlier '
    'run could not convert (a codec crash, a timeout, a damaged file), '
    'except videos whose file is still missing (a plain rerun keeps finished '
    'shards, retrying only failed videos whose file appeared or changed).')
_RETRY_ALL_FAILED = flags.DEFINE_bool(
    'retry_all_failed', False, 'Like --retry_failed, and also the videos '
    'whose file is still missing.')
_STRICT = flags.DEFINE_bool(
    'strict', False, 'Exit with status 3 when any video could not be '
    'converted (the shards and manifest are written all the same).')
_CSV_HEADER = flags.DEFINE_enum(
    'csv_header', 'auto', list(sources.CSV_HEADER),
    'Whether the first row of a path,label CSV names the columns; auto: a '
    'row of known column names (path/filename/video, label/class/category) '
    'that is no video file.')


def main(argv):
  beam_args = list(argv[1:])
  if _BEAM_RUNNER.value:
    beam_args.append(f'--runner={_BEAM_RUNNER.value}')
  if beam_args and _RUNNER.value != 'beam':
    raise app.UsageError(f'unknown arguments {beam_args} (only Beam options '
                         'are passed through, with --runner=beam)')
  if not _OUTPUT_DIR.value:
    raise app.UsageError('--output_dir is required')
  if not 1 <= _JPEG_QUALITY.value <= 100:
    raise app.UsageError(f'--jpeg_quality must be in [1, 100], got '
                         f'{_JPEG_QUALITY.value}')
  if _NUM_SHARDS.value < 1:
    raise app.UsageError(f'--num_shards must be >= 1, got {_NUM_SHARDS.value}')
  try:
    deadline = deadlines.parse(_DEADLINE.value)
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  try:
    if _SPLIT_FILES.value:
      if not _SPLIT_DIR.value or not _VIDEO_ROOT.value:
        raise job.UsageError(
            '--split_files needs --split_dir and --video_root')
      tasks, split_labels = split_files.read_split(
          _SPLIT_FILES.value, _SPLIT_DIR.value, _VIDEO_ROOT.value,
          _SPLIT_NUMBER.value)
    else:
      tasks = job.read_tasks(_INPUT_CSV.value, _VIDEO_ROOT.value,
                             _SPLIT.value, _CSV_HEADER.value)
      split_labels = None
    if not tasks:
      raise job.UsageError('the input lists no videos')
    labels = (sources.read_label_map(_LABEL_MAP.value) if _LABEL_MAP.value
              else split_labels or sources.build_label_map(tasks))
    options = video_frames.ConversionOptions(
        fps=_FPS.value, short_side=_SHORT_SIDE.value,
        jpeg_quality=_JPEG_QUALITY.value, min_frames=_MIN_FRAMES.value,
        keep_partial=_KEEP_PARTIAL.value)
    result = job.convert(
        tasks, _OUTPUT_DIR.value, labels, options, _NUM_SHARDS.value,
        runner=_RUNNER.value, workers=_WORKERS.value or os.cpu_count() or 1,
        beam_args=beam_args, overwrite=_OVERWRITE.value,
        retry_failed=(rerun.RETRY_ALL if _RETRY_ALL_FAILED.value
                      else _RETRY_FAILED.value), deadline=deadline)
  except (job.UsageError, sources.SourceError,
          rerun.RerunError) + files.FILE_ERRORS as e:
    print(f'convert_videos: error: {e}', file=sys.stderr)
    return 2
  summary = video_frames.format_summary(result['counts'], result['frames'])
  print(f'convert_videos: {summary}')
  print(f'convert_videos: manifest: '
        f'{os.path.join(_OUTPUT_DIR.value, shards.MANIFEST_FILE)}')
  for line in job.failure_lines(result['rows']):
    print(line)
  if result['counts'][decoder.OK] == 0:
    print('convert_videos: error: no video was converted', file=sys.stderr)
    return 1
  failed = len(result['rows']) - result['counts'][decoder.OK]
  if _STRICT.value and failed:
    print(f'convert_videos: error: --strict: {failed} videos were not '
          'converted (see the manifest)', file=sys.stderr)
    return 3
  return 0


def run_main():
  cli.run(main, flags_parser=lambda argv: flags.FLAGS(argv, known_only=True))


if __name__ == '__main__':
  run_main()
