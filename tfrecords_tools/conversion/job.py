"""The conversion job: inputs -> label map -> shard plan -> runner -> manifest.

Used by the `convert_videos` command line and by tests and benchmarks that run
conversions in-process. Resumes whatever an earlier, interrupted run of the
same job left: complete shards are kept, temporaries removed, the rest written.
"""

import dataclasses
import json
import multiprocessing
import os
from typing import Callable, List, Sequence

from absl import logging
import tensorflow as tf

from cvrl import files
from tfrecords_tools.conversion import beam_runner
from tfrecords_tools.conversion import progress as progress_lib
from tfrecords_tools.conversion import shards
from tfrecords_tools.conversion import sources
from tfrecords_tools.conversion import video_frames
from tfrecords_tools.conversion import decoder


OPTIONS_FILE = 'conversion.json'


class UsageError(Exception):
  pass


def _is_kinetics_csv(path: str) -> bool:
  with files.open_file(path) as f:
    header = [c.strip() for c in f.readline().split(',')]
  return 'youtube_id' in header


def read_tasks(input_csv, video_root, split) -> List[sources.VideoTask]:
  if input_csv:
    if not files.is_file(input_csv):
      raise UsageError(f'--input_csv {input_csv!r} does not exist')
    if _is_kinetics_csv(input_csv):
      if not video_root:
        raise UsageError('--video_root is required with a Kinetics CSV')
      return sources.read_kinetics_csv(input_csv, video_root)
    return sources.read_path_label_csv(input_csv, video_root or '', split)
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


def check_options(output_dir: str, record: dict) -> None:
  """A rerun must use the options of the first run, or shards would mix."""
  path = os.path.join(output_dir, OPTIONS_FILE)
  if tf.io.gfile.exists(path):
    with tf.io.gfile.GFile(path) as f:
      previous = json.load(f)
    if previous != record:
      changed = sorted(k for k in set(record) | set(previous)
                       if record.get(k) != previous.get(k))
      raise UsageError(
          f'{output_dir} holds a conversion made with other options '
          f'({", ".join(changed)} differ: {previous} vs {record}); use a new '
          '--output_dir or the same flags')
  else:
    with tf.io.gfile.GFile(path, 'w') as f:
      json.dump(record, f, sort_keys=True, indent=1)


def run_local(specs: Sequence[shards.ShardSpec], pending: Sequence[int],
              output_dir: str, options, workers: int,
              progress: progress_lib.Progress,
              convert_fn: Callable = video_frames.convert_video,
              encode: Callable = shards.encode_video) -> None:
  """Converts with a process pool; writes shards in order in this process."""
  jobs = [(i, t) for i in pending for t in specs[i].tasks]
  if not jobs:
    return
  convert = _ConvertFn(convert_fn, options)
  pool = None
  if workers > 1:
    # Fork: workers need only PyAV and Pillow, and inherit the imports.
    pool = multiprocessing.get_context('fork').Pool(workers)
    results = pool.imap(convert, [t for _, t in jobs], chunksize=1)
  else:
    results = map(convert, [t for _, t in jobs])
  try:
    writer, current = None, None
    for (shard_index, _), result in zip(jobs, results):
      if shard_index != current:
        writer = shards.ShardWriter(output_dir, specs[shard_index], encode)
        current = shard_index
      writer.add(result)
      progress.update()
      if writer.tasks_added == len(specs[shard_index].tasks):
        writer.commit()
  finally:
    if pool is not None:
      pool.terminate()
      pool.join()


class _ConvertFn:
  """Picklable callable binding the options, for Pool.imap."""

  def __init__(self, convert_fn, options):
    self._convert_fn = convert_fn
    self._options = options

  def __call__(self, task):
    return self._convert_fn(task, self._options)


def run_plan(specs: Sequence[shards.ShardSpec], output_dir: str, options,
             runner: str, workers: int, beam_args: Sequence[str] = (),
             convert_fn: Callable = video_frames.convert_video,
             encode: Callable = shards.encode_video,
             unit: str = 'videos') -> List[dict]:
  """Writes the shards of `specs` that are not complete yet (removing what
  a killed run left), then the manifest; returns its rows."""
  stale = shards.remove_stale_temporaries(output_dir)
  if stale:
    logging.info('removed %d temporary files of an interrupted run', stale)
  pending = [i for i, s in enumerate(specs)
             if not shards.is_complete(output_dir, s)]
  done = len(specs) - len(pending)
  if done:
    logging.info('resuming: %d of %d shards already complete', done,
                 len(specs))
  todo = sum(len(specs[i].tasks) for i in pending)
  progress = progress_lib.Progress(todo, unit=unit)
  if runner == 'beam':
    beam_runner.run(specs, pending, output_dir, options, list(beam_args),
                    convert_fn, encode)
  else:
    run_local(specs, pending, output_dir, options, workers, progress,
              convert_fn, encode)
  return shards.write_manifest(output_dir, specs)


def convert(tasks: Sequence[sources.VideoTask], output_dir: str,
            label_map: Sequence[str],
            options: video_frames.ConversionOptions, num_shards: int,
            runner: str = 'local', workers: int = 1,
            beam_args: Sequence[str] = ()) -> dict:
  """Converts `tasks` into `output_dir`, resuming any earlier partial run.

  Returns:
    {'counts': per-status counts, 'frames': frames written, 'rows': manifest}.
  """
  tasks = sources.assign_labels(tasks, label_map)
  tf.io.gfile.makedirs(output_dir)
  record = dataclasses.asdict(options)
  record.update(num_shards=num_shards, num_videos=len(tasks),
                label_map=list(label_map))
  check_options(output_dir, record)
  label_map_path = os.path.join(output_dir, shards.LABEL_MAP_FILE)
  with tf.io.gfile.GFile(label_map_path, 'w') as f:
    f.write(''.join(f'{name}\n' for name in label_map))

  specs = shards.plan_shards(tasks, num_shards)
  rows = run_plan(specs, output_dir, options, runner, workers, beam_args)
  counts = video_frames.summarize(rows)
  frames = sum(r['frames'] for r in rows if r['status'] == decoder.OK)
  return {'counts': counts, 'frames': frames, 'rows': rows}
