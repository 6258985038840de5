r"""Converts AVA v2.2 (movies + annotation CSVs) into keyframe TFRecords.

One tf.train.SequenceExample per keyframe: the clip centred on it (frames
resampled to --fps, short side --short_side, one JPEG per frame, as the
classification records), its ground-truth boxes with multi-hot actions and
person ids, the person proposals with scores, movie id and timestamp.

  python -m tfrecords_tools.convert_ava --split=train --keyframes=annotated \
      --annotation_dir=/data/ava/annotations --video_root=/data/ava/videos_15min \
      --output_dir=/data/ava/tfrecords/train --num_shards=256
  python -m tfrecords_tools.convert_ava --split=val ... \
      --proposals_csv=/data/ava/ava_val_predicted_boxes.csv

--annotation_dir finds AVA's own file names (ava_{split}_v2.2.csv,
ava_{split}_excluded_timestamps_v2.2.csv, ava_action_list_v2.2.pbtxt and,
if there, PySlowFast's ava_{split}_predicted_boxes.csv); each can be given
explicitly instead. Movie files are found anywhere under --video_root by
their id; --movie_start_s is the AVA second at time 0 of the files (900 for
PySlowFast's videos_15min cuts, 0 for the full movies).

At scale, --runner=beam (Beam options follow, --beam_runner=DataflowRunner
...), as convert_videos. Output: shards, manifest.jsonl (one row per
keyframe with its status: ok, missing, corrupt, too_short, unreadable,
excluded), annotation_problems.csv (every bad annotation row with file and
line; also printed), label_map.pbtxt, conversion.json. Killing the job and
running the same command again finishes it with byte-identical output.
"""

import dataclasses
import os
import sys

from absl import app
from absl import flags
import tensorflow as tf

from cvrl import files
from cvrl.data import ava_files
from tfrecords_tools.conversion import ava_keyframes
from tfrecords_tools.conversion import decoder
from tfrecords_tools.conversion import deadlines
from tfrecords_tools.conversion import folder_lock
from tfrecords_tools.conversion import job
from tfrecords_tools.conversion import rerun
from tfrecords_tools.conversion import shards
from tfrecords_tools.conversion import video_frames
from cvrl.tools import cli

_SPLIT = flags.DEFINE_string('split', 'train', 'AVA split name (train, val).')
_ANNOTATION_DIR = flags.DEFINE_string(
    'annotation_dir', None, 'Folder with AVA v2.2\'s annotation files.')
_BOXES_CSV = flags.DEFINE_string(
    'boxes_csv', None, 'Ground truth (default: ava_{split}_v2.2.csv).')
_PROPOSALS_CSV = flags.DEFINE_string(
    'proposals_csv', None,
    'Person proposals with scores (default: ava_{split}_predicted_boxes.csv '
    'in --annotation_dir if it exists).')
_EXCLUDED_CSV = flags.DEFINE_string(
    'excluded_csv', None,
    'Excluded timestamps (default: ava_{split}_excluded_timestamps_v2.2.csv).')
_LABEL_MAP = flags.DEFINE_string(
    'label_map', None, 'Action label map (default: ava_action_list_v2.2.pbtxt).')
_VIDEO_ROOT = flags.DEFINE_string('video_root', None,
                                  'Folder holding the movie files.')
cli.deprecated_alias('movie_root', 'video_root')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Where to write.')
_FPS = flags.DEFINE_float('fps', 30.0, 'Frame rate of the stored clips.')
_CLIP_FRAMES = flags.DEFINE_integer(
    'clip_frames', 64, 'Frames per keyframe clip (the keyframe is frame '
    'clip_frames // 2); 64 at 30 fps covers 32 frames at stride 2.')
_SHORT_SIDE = flags.DEFINE_integer('short_side', 256,
                                   'Shorter side of stored frames; 0 keeps.')
_JPEG_QUALITY = flags.DEFINE_integer('jpeg_quality', 90, 'JPEG quality.')
_MOVIE_START_S = flags.DEFINE_float(
    'movie_start_s', 900.0, 'AVA second at time 0 of the movie files.')
_KEYFRAMES_PER_TASK = flags.DEFINE_integer(
    'keyframes_per_task', 10, 'Consecutive keyframes decoded as one unit.')
_KEYFRAMES = flags.DEFINE_enum(
    'keyframes', 'all', ['all', 'annotated'],
    'all: every keyframe with ground truth or proposals (evaluation: a '
    'detection on an unannotated keyframe counts as false, as in the '
    'official evaluator); annotated: only keyframes with ground truth '
    '(training, as PySlowFast does).')
_NUM_SHARDS = flags.DEFINE_integer('num_shards', 16, 'Shards.')
_WORKERS = flags.DEFINE_integer('workers', 0, 'Processes; 0: all cores.')
_RUNNER = flags.DEFINE_enum('runner', 'local', ['local', 'beam'], 'Runner.')
_DEADLINE = flags.DEFINE_string(
    'deadline', 'auto',
    'Time a worker may spend on one movie chunk: auto (120 s + 10 s a '
    'second of movie), none, or seconds (see convert_videos --deadline).')
_BEAM_RUNNER = flags.DEFINE_string('beam_runner', None, 'Beam runner.')

_OVERWRITE = flags.DEFINE_bool(
    'overwrite', False, 'Convert into an --output_dir that holds a '
    'conversion of other annotations or options (shards whose inputs are '
    'unchanged are kept); without it such a rerun is refused.')
_RETRY_FAILED = flags.DEFINE_bool(
    'retry_failed', False, 'Convert again the shards with keyframes an earlier '
    'run could not convert (a codec crash, a timeout, a damaged file), '
    'except keyframes whose file is still missing (a plain rerun keeps finished '
    'shards, retrying only failed keyframes whose file appeared or changed).')
_RETRY_ALL_FAILED = flags.DEFINE_bool(
    'retry_all_failed', False, 'Like --retry_failed, and also the keyframes '
    'whose file is still missing.')

PROBLEMS_FILE = 'annotation_problems.csv'
LABEL_MAP_FILE = 'label_map.pbtxt'


def _default(explicit, name, must_exist=True):
  if explicit or not _ANNOTATION_DIR.value:
    return explicit
  path = os.path.join(_ANNOTATION_DIR.value, name)
  return path if (not must_exist or tf.io.gfile.exists(path)) else None


def _write_problems(path, problems):
  with files.open_file(path, 'w') as f:
    f.write('file,line,problem\n')
    for p in problems:
      message = p.message.replace('"', "'")
      f.write(f'{p.path},{p.line},"{message}"\n')


def main(argv):
  beam_args = list(argv[1:])
  if _BEAM_RUNNER.value:
    beam_args.append(f'--runner={_BEAM_RUNNER.value}')
  if beam_args and _RUNNER.value != 'beam':
    raise app.UsageError(f'unknown arguments {beam_args}')
  for name, flag in (('--output_dir', _OUTPUT_DIR), ('--video_root',
                                                      _VIDEO_ROOT)):
    if not flag.value:
      raise app.UsageError(f'{name} is required')
  split = _SPLIT.value
  boxes = _default(_BOXES_CSV.value, f'ava_{split}_v2.2.csv', False)
  proposals = _default(_PROPOSALS_CSV.value,
                       f'ava_{split}_predicted_boxes.csv')
  excluded = _default(_EXCLUDED_CSV.value,
                      f'ava_{split}_excluded_timestamps_v2.2.csv')
  label_map = _default(_LABEL_MAP.value, 'ava_action_list_v2.2.pbtxt', False)
  lock = None
  if _CLIP_FRAMES.value < 1 or _FPS.value <= 0:
    raise app.UsageError('--clip_frames must be >= 1 and --fps > 0')
  try:
    if not label_map:
      raise job.UsageError('give --label_map or --annotation_dir')
    if not boxes and not proposals:
      raise job.UsageError('give --boxes_csv or --proposals_csv (or '
                           '--annotation_dir holding them)')
    for path in (boxes, proposals, excluded):
      if path and not files.is_file(path):
        raise job.UsageError(f'{path} does not exist')
    labels = ava_files.read_label_map(label_map)
    tasks, problems = ava_keyframes.read_split(
        split, boxes, proposals, excluded, set(labels), _VIDEO_ROOT.value,
        _KEYFRAMES_PER_TASK.value, _KEYFRAMES.value == 'annotated')
    if not tasks:
      raise job.UsageError('the annotations list no keyframe')
    try:
      deadline = deadlines.parse(_DEADLINE.value)
    except ValueError as e:
      raise job.UsageError(str(e)) from e
    options = ava_keyframes.ClipOptions(
        fps=_FPS.value, clip_frames=_CLIP_FRAMES.value,
        short_side=_SHORT_SIDE.value, jpeg_quality=_JPEG_QUALITY.value,
        movie_start_s=_MOVIE_START_S.value)
    output_dir = _OUTPUT_DIR.value
    job.prepare_output_dir(output_dir)
    record = dataclasses.asdict(options)
    record.update(kind='ava', split=split, num_shards=_NUM_SHARDS.value,
                  keyframes=_KEYFRAMES.value,
                  keyframes_per_task=_KEYFRAMES_PER_TASK.value,
                  labels={str(k): v for k, v in sorted(labels.items())})
    lock = folder_lock.Lock(output_dir)
    lock.acquire()
    job.check_options(output_dir, record, _OVERWRITE.value)
    for p in problems[:20]:
      print(f'convert_ava: bad annotation: {p}', file=sys.stderr)
    if len(problems) > 20:
      print(f'convert_ava: ... and {len(problems) - 20} more in '
            f'{PROBLEMS_FILE}', file=sys.stderr)
    specs = shards.plan_shards(tasks, _NUM_SHARDS.value)
    rows = job.run_plan(specs, output_dir, options, _RUNNER.value,
                        _WORKERS.value or os.cpu_count() or 1, beam_args,
                        ava_keyframes.convert_chunk,
                        ava_keyframes.encode_chunk, unit='movie chunks',
                        record=record, overwrite=_OVERWRITE.value,
                        retry_failed=(rerun.RETRY_ALL
                                      if _RETRY_ALL_FAILED.value
                                      else _RETRY_FAILED.value),
                        failure_fn=ava_keyframes.failed_chunk,
                        deadline=deadline)
    # After the rerun check: a refused rerun changes nothing in the folder.
    tf.io.gfile.copy(label_map, os.path.join(output_dir, LABEL_MAP_FILE),
                     overwrite=True)
    _write_problems(os.path.join(output_dir, PROBLEMS_FILE), problems)
    lock.release()
  except (job.UsageError, ava_files.AnnotationError,
          rerun.RerunError) + files.FILE_ERRORS as e:
    if lock is not None:
      lock.release()
    print(f'convert_ava: error: {e}', file=sys.stderr)
    return 2
  counts = video_frames.summarize(rows, ava_keyframes.STATUSES)
  frames = sum(r['frames'] for r in rows if r['status'] == decoder.OK)
  parts = ', '.join(f'{k}={v}' for k, v in counts.items())
  print(f'convert_ava: {len(rows)} keyframes: {parts}; {frames} frames; '
        f'{len(problems)} bad annotation rows ({PROBLEMS_FILE})')
  for line in job.failure_lines(rows, (decoder.OK, ava_keyframes.EXCLUDED)):
    print(line)
  if counts[decoder.OK] == 0:
    print('convert_ava: error: no keyframe was converted', file=sys.stderr)
    return 1
  return 0


def run_main():
  cli.run(main, flags_parser=lambda argv: flags.FLAGS(argv, known_only=True))


if __name__ == '__main__':
  run_main()
