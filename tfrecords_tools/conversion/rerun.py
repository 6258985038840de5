"""What a conversion rerun may keep, and one job per output folder.

Every shard carries the fingerprint of what it was made from: its tasks
(clip ids, paths, labels, trim times; AVA: keyframes, boxes, proposals) and
the options, in `.manifest/<shard>.inputs`, written before the manifest
piece that marks the shard complete. On a rerun, per shard of the plan:

  same fingerprint, no failed row       kept (resume: byte-identical)
  same fingerprint, failed rows         kept, unless a failed row has
                                        something new to try: its missing
                                        file appeared, or its file changed
                                        after the shard was written (fixed
                                        in place); --retry_failed converts
                                        again every shard with a failed row
                                        other than a file still missing
                                        (Kinetics's never-downloaded ids),
                                        --retry_all_failed every one
  other paths only on rows that failed  converted again (a corrected
                                        --video_root)
  anything else different               the job refuses, saying what
                                        differs, unless --overwrite

and shards of an earlier plan that this one does not write (another
--num_shards) are reported, and with --overwrite removed. A refusal
touches nothing. Shards written before fingerprints existed are adopted
when their manifest rows name the same clips, paths and labels.

One job per output folder: `folder_lock`.
"""

import dataclasses
import hashlib
import json
import os
from typing import Dict, List, Optional, Sequence

import tensorflow as tf

from tfrecords_tools.conversion import decoder

INPUTS_SUFFIX = '.inputs'
# Failures that a fixed path or file may cure (a rerun looks at their files;
# --retry_failed converts them again).
# --retry_all_failed: every failed row, never-found files included.
RETRY_ALL = 'all'
RETRY_STATUSES = (decoder.MISSING, decoder.UNREADABLE, decoder.CORRUPT,
                  decoder.WORKER_DIED, decoder.TIMEOUT)


class RerunError(ValueError):
  """The output folder holds a conversion of other inputs or options."""


def fingerprint(tasks: Sequence, options_record: Dict) -> str:
  """sha256 of a shard's tasks (frozen dataclasses: a stable repr) and the
  conversion's options."""
  digest = hashlib.sha256(json.dumps(options_record, sort_keys=True)
                          .encode('utf-8'))
  for task in tasks:
    digest.update(repr(dataclasses.astuple(task)).encode('utf-8'))
  return digest.hexdigest()


def _read(path: str) -> Optional[str]:
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return f.read().strip()


def _rows(path: str) -> List[Dict]:
  with tf.io.gfile.GFile(path) as f:
    return [json.loads(line) for line in f if line.strip()]


@dataclasses.dataclass
class ShardCheck:
  """What a rerun does with one shard: keep, convert, or a difference."""
  keep: bool
  difference: str = ''  # set when only --overwrite may replace it


def _new_to_try(row: Dict, written_ns: int) -> bool:
  """Whether a failed row's input now differs from when it failed: a
  missing file that exists, or a file modified after the shard."""
  path = row.get('path')
  if not path:
    return False
  try:
    stat = tf.io.gfile.stat(path)
  except tf.errors.OpError:
    return False  # still missing (or unreachable): nothing new
  if row.get('status') == decoder.MISSING:
    return True
  # >=: TensorFlow's local stat has whole seconds; a file rewritten within
  # the second its shard was written is tried again (once: the new shard
  # is newer).
  return stat.mtime_nsec >= written_ns


def check_shard(output_dir: str, spec, digest: str, manifest_dir: str,
                retry_failed=False) -> ShardCheck:
  """keep / convert again / refuse, for one shard of the plan.

  retry_failed: False (a plain rerun: failed rows with something new to
  try), True (also every failed row but a file still missing: a codec
  crash, a timeout or a damaged file may go another way) or RETRY_ALL.
  """
  shard = os.path.join(output_dir, spec.filename)
  piece = os.path.join(output_dir, manifest_dir, spec.filename + '.jsonl')
  if not (tf.io.gfile.exists(shard) and tf.io.gfile.exists(piece)):
    return ShardCheck(keep=False)  # never finished: (re)written
  rows = _rows(piece)
  failed_rows = [r for r in rows if r.get('status') in RETRY_STATUSES]
  failed = bool(failed_rows)
  stored = _read(os.path.join(output_dir, manifest_dir,
                              spec.filename + INPUTS_SUFFIX))
  if stored == digest:
    if not failed:
      return ShardCheck(keep=True)
    if retry_failed == RETRY_ALL or (retry_failed and any(
        r.get('status') != decoder.MISSING for r in failed_rows)):
      return ShardCheck(keep=False)
    written_ns = tf.io.gfile.stat(piece).mtime_nsec
    # One look per distinct input (AVA chunks share their movie).
    looked = {}
    for row in failed_rows:
      key = (row.get('path'), row.get('status'))
      if key not in looked:
        looked[key] = _new_to_try(row, written_ns)
      if looked[key]:
        return ShardCheck(keep=False)
    return ShardCheck(keep=True)
  # Inputs differ (or a shard from before fingerprints): allowed only when
  # every row names the same clip and label, and a path differs only where
  # the row failed. Chunked sources (AVA) compare their chunk ids.
  ids = [r.get('id') for r in rows]
  tasks = list(spec.tasks)
  wanted = [getattr(t, 'clip_id', None) for t in tasks]
  if hasattr(tasks[0], 'keyframes'):  # AVA chunks: one row per keyframe
    if stored is None and len(rows) == sum(len(t.keyframes) for t in tasks):
      return ShardCheck(keep=not failed)
    return ShardCheck(False, f'{spec.filename}: other keyframes, boxes or '
                      'movie paths')
  if len(rows) != len(tasks) or ids != wanted:
    added = sorted(set(wanted) - set(ids))
    removed = sorted(set(ids) - set(wanted))
    return ShardCheck(False, f'{spec.filename}: other videos ('
                      f'{len(added)} new, e.g. {added[:2]}; {len(removed)} '
                      f'gone, e.g. {removed[:2]})')
  for row, task in zip(rows, tasks):
    if row.get('label', task.label) != task.label:
      return ShardCheck(False, f'{spec.filename}: {task.clip_id} was '
                        f'labelled {row.get("label")!r}, now {task.label!r}')
    if row.get('path') != task.path and row.get('status') not in (
        RETRY_STATUSES):
      return ShardCheck(False, f'{spec.filename}: {task.clip_id} converted '
                        f'from {row.get("path")!r}, now {task.path!r}')
  if stored is None and not failed:
    return ShardCheck(keep=True)  # written before fingerprints: adopted
  return ShardCheck(keep=False)  # failed rows with corrected paths: retried


def write_fingerprint(output_dir: str, manifest_dir: str, filename: str,
                      digest: str) -> None:
  path = os.path.join(output_dir, manifest_dir, filename + INPUTS_SUFFIX)
  tmp = f'{path}.tmp-{os.getpid()}'
  with tf.io.gfile.GFile(tmp, 'w') as f:
    f.write(digest + '\n')
  tf.io.gfile.rename(tmp, path, overwrite=True)


def refusal(output_dir: str, differences: Sequence[str]) -> RerunError:
  shown = '; '.join(differences[:3])
  more = (f' (and {len(differences) - 3} more shards)'
          if len(differences) > 3 else '')
  return RerunError(
      f'{output_dir} holds a conversion of other inputs: {shown}{more}. '
      'Nothing was changed. Rerun with --overwrite to convert these inputs '
      'into it (shards whose inputs are unchanged are kept), or give a new '
      '--output_dir')
