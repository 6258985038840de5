"""The conversion job: inputs -> label map -> shard plan -> runner -> manifest.

Used by the `convert_videos` command line and by tests and benchmarks that run
conversions in-process. Resumes whatever an earlier, interrupted run of the
same job left: complete shards are kept, temporaries removed, the rest written.
"""

import dataclasses
import json
import os
from typing import Callable, List, Optional, Sequence

from absl import logging
import tensorflow as tf

from cvrl import files
from cvrl import progress as progress_lib
from tfrecords_tools.conversion import beam_runner
from tfrecords_tools.conversion import deadlines
from tfrecords_tools.conversion import folder_lock
from tfrecords_tools.conversion import rerun
from tfrecords_tools.conversion import shards
from tfrecords_tools.conversion import sources
from tfrecords_tools.conversion import task_call
from tfrecords_tools.conversion import video_frames
from tfrecords_tools.conversion import decoder
from tfrecords_tools.conversion import worker_pool


OPTIONS_FILE = 'conversion.json'


class UsageError(Exception):
  pass


def _is_kinetics_csv(path: str) -> bool:
  with files.open_file(path) as f:
    header = [c.strip() for c in f.readline().split(',')]
  return 'youtube_id' in header


def read_tasks(input_csv, video_root, split,
               csv_header: str = 'auto') -> List[sources.VideoTask]:
  if input_csv:
    if not files.is_file(input_csv):
      raise UsageError(f'--input_csv {input_csv!r} does not exist')
    if _is_kinetics_csv(input_csv):
      if not video_root:
        raise UsageError('--video_root is required with a Kinetics CSV')
      return sources.read_kinetics_csv(input_csv, video_root)
    return sources.read_path_label_csv(input_csv, video_root or '', split,
                                       csv_header)
  if not video_root:
    raise UsageError('give --input_csv or --video_root')
  return sources.read_folder_tree(video_root, split)


def failure_lines(rows: Sequence[dict], fine: Sequence[str] = (decoder.OK,),
                  limit: int = 20) -> List[str]:
  """The manifest rows whose status is not in `fine`, one line each, the
  first `limit` of them and how many more the manifest holds."""
  failed = [r for r in rows if r['status'] not in fine]
  lines = [f"  {r['status']}: {r['id']} ({r['path']}): {r['error']}"
           for r in failed[:limit]]
  if len(failed) > limit:
    lines.append(f'  ... and {len(failed) - limit} more in the manifest')
  return lines


def check_options(output_dir: str, record: dict,
                  overwrite: bool = False) -> None:
  """A rerun must use the options of the first run, or shards would mix;
  --overwrite replaces them (every shard is then converted again)."""
  path = os.path.join(output_dir, OPTIONS_FILE)
  if tf.io.gfile.exists(path):
    with tf.io.gfile.GFile(path) as f:
      previous = json.load(f)
    # Older runs recorded the number of videos: the shards' fingerprints
    # now say which videos they hold.
    previous.pop('num_videos', None)
    previous.pop('num_keyframes', None)
    if previous == record:
      return
    changed = sorted(k for k in set(record) | set(previous)
                     if record.get(k) != previous.get(k))
    if not overwrite:
      raise UsageError(
          f'{output_dir} holds a conversion made with other options '
          f'({", ".join(changed)} differ: '
          f'{ {k: previous.get(k) for k in changed} } vs '
          f'{ {k: record.get(k) for k in changed} }); nothing was changed. '
          'Rerun with --overwrite to convert again with these options, or '
          'use a new --output_dir or the same flags')
    logging.warning('--overwrite: options %s change; every shard is '
                    'converted again', ', '.join(changed))
  with tf.io.gfile.GFile(path, 'w') as f:
    json.dump(record, f, sort_keys=True, indent=1)


def _other_shards(output_dir: str, specs) -> List[str]:
  """Shard files of the plan's splits that this plan does not write."""
  planned = {s.filename for s in specs}
  found = []
  for split in sorted({s.split for s in specs}):
    for path in tf.io.gfile.glob(os.path.join(output_dir,
                                              f'{split}-*-of-*.tfrecord')):
      if os.path.basename(path) not in planned:
        found.append(os.path.basename(path))
  return found


def plan_rerun(specs: Sequence[shards.ShardSpec], output_dir: str,
               record: dict, overwrite: bool,
               retry_failed=False) -> List[int]:
  """Fingerprints the shards; returns those to convert (`rerun`'s rules).

  Raises RerunError saying what differs when inputs changed and not
  overwrite; with overwrite, the shards of an earlier plan that this one
  does not write are removed.
  """
  differences, pending = [], []
  for i, spec in enumerate(specs):
    spec.inputs = rerun.fingerprint(spec.tasks, record)
    check = rerun.check_shard(output_dir, spec, spec.inputs,
                              shards.MANIFEST_DIR, retry_failed)
    if check.difference:
      differences.append(check.difference)
    if not check.keep:
      pending.append(i)
  others = _other_shards(output_dir, specs)
  if others:
    differences.append(f'{len(others)} shards of an earlier conversion '
                       f'that this one would not write, e.g. {others[0]}')
  if differences and not overwrite:
    raise rerun.refusal(output_dir, differences)
  for name in others:
    for path in (os.path.join(output_dir, name),
                 os.path.join(output_dir, shards.MANIFEST_DIR,
                              name + '.jsonl'),
                 os.path.join(output_dir, shards.MANIFEST_DIR,
                              name + rerun.INPUTS_SUFFIX)):
      if tf.io.gfile.exists(path):
        tf.io.gfile.remove(path)
  if differences:
    logging.warning('--overwrite: %s', '; '.join(differences))
  return pending


def run_local(specs: Sequence[shards.ShardSpec], pending: Sequence[int],
              output_dir: str, options, workers: int,
              progress: progress_lib.Progress,
              convert_fn: Callable = video_frames.convert_video,
              encode: Callable = shards.encode_video,
              failure_fn: Callable = video_frames.failed_result,
              deadline: Optional[deadlines.Deadline] = deadlines.DEFAULT
              ) -> None:
  """Converts on `workers` processes (`worker_pool`: a task whose worker
  died or passed its `deadline` is retried alone, then recorded as
  `worker_died` or `timeout`); writes shards in order in this process.
  --workers=1 converts in this process, without a deadline."""
  jobs = [(i, t) for i in pending for t in specs[i].tasks]
  if not jobs:
    return
  tasks = [t for _, t in jobs]
  in_memory = [t.path for t in tasks if _in_process_memory(t.path)]
  if workers > 1 and in_memory:
    raise UsageError(
        f'{in_memory[0]}: a ram:// file lives in this process\'s memory, '
        'where spawned conversion workers cannot read it; convert with '
        '--workers=1')
  if workers > 1:
    results = worker_pool.ordered_results(
        task_call.ConvertCall(convert_fn, options, deadline), tasks, workers,
        on_failure=task_call.failure_handler(failure_fn, deadline))
  else:
    results = map(task_call.ConvertCall(convert_fn, options, None), tasks)
  writer, current = None, None
  for (shard_index, _), result in zip(jobs, results):
    if shard_index != current:
      writer = shards.ShardWriter(output_dir, specs[shard_index], encode)
      current = shard_index
    writer.add(result)
    progress.update()
    if writer.tasks_added == len(specs[shard_index].tasks):
      writer.commit()


def _in_process_memory(path) -> bool:
  return bool(path) and str(path).startswith('ram://')


def run_plan(specs: Sequence[shards.ShardSpec], output_dir: str, options,
             runner: str, workers: int, beam_args: Sequence[str] = (),
             convert_fn: Callable = video_frames.convert_video,
             encode: Callable = shards.encode_video,
             unit: str = 'videos', record: Optional[dict] = None,
             overwrite: bool = False, retry_failed=False,
             failure_fn: Callable = video_frames.failed_result,
             deadline: Optional[deadlines.Deadline] = deadlines.DEFAULT
             ) -> List[dict]:
  """Writes the shards of `specs` that a rerun may not keep (removing what
  a killed run left; `plan_rerun`), then the manifest; returns its rows.

  record: the options that the shards' fingerprints cover (default: the
  conversion options).
  deadline: each video's time limit in a worker (None: no limit).
  """
  stale = shards.remove_stale_temporaries(output_dir)
  if stale:
    logging.info('removed %d temporary files of an interrupted run', stale)
  if record is None:
    record = dataclasses.asdict(options)
  pending = plan_rerun(specs, output_dir, record, overwrite, retry_failed)
  done = len(specs) - len(pending)
  if done:
    logging.info('resuming: %d of %d shards already complete', done,
                 len(specs))
  todo = sum(len(specs[i].tasks) for i in pending)
  progress = progress_lib.Progress(todo, unit=unit)
  if runner == 'beam':
    beam_runner.run(specs, pending, output_dir, options, list(beam_args),
                    convert_fn, encode, failure_fn, deadline)
  else:
    run_local(specs, pending, output_dir, options, workers, progress,
              convert_fn, encode, failure_fn, deadline)
  return shards.write_manifest(output_dir, specs)


def prepare_output_dir(output_dir: str) -> None:
  """Creates the output folder, or says in one line why it cannot."""
  try:
    tf.io.gfile.makedirs(output_dir)
  except tf.errors.OpError as e:
    raise UsageError(f'--output_dir {output_dir!r} cannot be created: '
                     f'{e.message}') from e
  if not tf.io.gfile.isdir(output_dir) and '://' not in output_dir:
    raise UsageError(f'--output_dir {output_dir!r} is not a folder')


def convert(tasks: Sequence[sources.VideoTask], output_dir: str,
            label_map: Sequence[str],
            options: video_frames.ConversionOptions, num_shards: int,
            runner: str = 'local', workers: int = 1,
            beam_args: Sequence[str] = (), overwrite: bool = False,
            retry_failed=False,
            deadline: Optional[deadlines.Deadline] = deadlines.DEFAULT
            ) -> dict:
  """Converts `tasks` into `output_dir`, resuming any earlier partial run
  of the same inputs (refusing other inputs unless overwrite; `rerun`).

  Returns:
    {'counts': per-status counts, 'frames': frames written, 'rows': manifest}.
  """
  tasks = sources.assign_labels(tasks, label_map)
  prepare_output_dir(output_dir)
  record = dataclasses.asdict(options)
  record.update(num_shards=num_shards, label_map=list(label_map))
  with folder_lock.Lock(output_dir):
    check_options(output_dir, record, overwrite)
    specs = shards.plan_shards(tasks, num_shards)
    label_map_path = os.path.join(output_dir, shards.LABEL_MAP_FILE)
    rows = run_plan(specs, output_dir, options, runner, workers, beam_args,
                    record=record, overwrite=overwrite,
                    retry_failed=retry_failed, deadline=deadline)
    with tf.io.gfile.GFile(label_map_path, 'w') as f:
      f.write(''.join(f'{name}\n' for name in label_map))
  counts = video_frames.summarize(rows)
  frames = sum(r['frames'] for r in rows if r['status'] == decoder.OK)
  return {'counts': counts, 'frames': frames, 'rows': rows}
