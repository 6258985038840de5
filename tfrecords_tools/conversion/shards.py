"""Shard layout, SequenceExample building and crash-safe shard writing.

A shard is the unit of completion. Its videos are a fixed, contiguous slice of
the sorted task list, so its bytes depend only on the inputs and options.
Each shard is written under a temporary name, then renamed; its manifest piece
is renamed after it and marks the shard complete. A killed run (even SIGKILL)
leaves only temporary files and complete shards behind, and the same command
finishes the rest: the result is byte-identical to an uninterrupted run.
"""

import dataclasses
import json
import os
from typing import Callable, Dict, Iterable, List, Sequence, Tuple

import tensorflow as tf

from cvrl.data import features
from cvrl.data import record_index
from tfrecords_tools.conversion import sources
from tfrecords_tools.conversion import video_frames
from tfrecords_tools.conversion import decoder
from tfrecords_tools.conversion import records
from tfrecords_tools.conversion import rerun

MANIFEST_DIR = '.manifest'
MANIFEST_FILE = 'manifest.jsonl'
LABEL_MAP_FILE = 'label_map.txt'
_TMP_MARK = '.tmp-'


@dataclasses.dataclass
class ShardSpec:
  split: str
  index: int
  count: int
  tasks: List[sources.VideoTask]
  # Fingerprint of the tasks and options (`rerun.fingerprint`), written
  # beside the manifest piece when the shard commits.
  inputs: str = ''

  @property
  def filename(self) -> str:
    return shard_filename(self.split, self.index, self.count)

  @property
  def manifest_piece(self) -> str:
    return os.path.join(MANIFEST_DIR, self.filename + '.jsonl')


def shard_filename(split: str, index: int, count: int) -> str:
  return f'{split}-{index:05d}-of-{count:05d}.tfrecord'


def plan_shards(tasks: Sequence[sources.VideoTask],
                num_shards: int) -> List[ShardSpec]:
  """Splits sorted tasks into `num_shards` contiguous shards per split.

  A split with fewer videos than `num_shards` gets one shard per video, so no
  shard is empty by construction.
  """
  by_split: Dict[str, List[sources.VideoTask]] = {}
  for task in sorted(tasks, key=sources.VideoTask.sort_key):
    by_split.setdefault(task.split, []).append(task)
  specs = []
  for split in sorted(by_split):
    items = by_split[split]
    count = max(1, min(num_shards, len(items)))
    for i in range(count):
      lo, hi = i * len(items) // count, (i + 1) * len(items) // count
      specs.append(ShardSpec(split, i, count, items[lo:hi]))
  return specs


def bytes_feature(values: Iterable[bytes]) -> tf.train.Feature:
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def int64_feature(values: Iterable[int]) -> tf.train.Feature:
  return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def float_feature(values: Iterable[float]) -> tf.train.Feature:
  return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))


def serialize_clip(context: Dict[str, tf.train.Feature],
                   jpegs: Sequence[bytes]) -> bytes:
  """A SequenceExample of `context` and one JPEG per frame under IMAGE_KEY,
  serialised as protobuf's deterministic serialisation (map fields in a
  stable order), so reruns write byte-identical shards."""
  _, chunks = records.clip_record(context, [len(j) for j in jpegs],
                                  lambda: iter(jpegs))
  return b''.join(chunks())


def video_context(result: video_frames.VideoResult
                  ) -> Dict[str, tf.train.Feature]:
  """The context features of a converted video (keys of `features`)."""
  task = result.task
  context = {
      features.LABEL_INDEX_KEY: int64_feature([task.label_index]),
      features.LABEL_TEXT_KEY: bytes_feature([task.label.encode('utf-8')]),
      features.CLIP_ID_KEY: bytes_feature([task.clip_id.encode('utf-8')]),
      features.FILENAME_KEY: bytes_feature(
          [(task.path or '').encode('utf-8')]),
      features.START_TIMESTAMP_KEY: int64_feature([result.start_us]),
      features.END_TIMESTAMP_KEY: int64_feature([result.end_us]),
      features.FPS_KEY: float_feature([result.fps]),
      features.NUM_FRAMES_KEY: int64_feature([len(result.jpegs)]),
      features.HEIGHT_KEY: int64_feature([result.height]),
      features.WIDTH_KEY: int64_feature([result.width]),
  }
  return context


def build_sequence_example(result: video_frames.VideoResult
                           ) -> records.Record:
  """The video's tf.train.SequenceExample: bytes, or, for frames in a spill
  file, (length, chunks) that the shard writer streams."""
  context = video_context(result)
  clip = result.jpegs
  if isinstance(clip, records.Clip):
    return records.clip_record(context, clip.sizes(), clip.read)
  return serialize_clip(context, clip)


# What a shard writer makes of one converted task: its serialised records,
# its manifest rows and the number of frames written.
Encoded = Tuple[List[bytes], List[Dict], int]


def encode_video(result: video_frames.VideoResult) -> Encoded:
  """One record per converted video, one manifest row per video."""
  if result.status != decoder.OK:
    return [], [result.manifest_row()], 0
  return ([build_sequence_example(result)], [result.manifest_row()],
          len(result.jpegs))


def is_complete(output_dir: str, spec: ShardSpec) -> bool:
  return (tf.io.gfile.exists(os.path.join(output_dir, spec.manifest_piece)) and
          tf.io.gfile.exists(os.path.join(output_dir, spec.filename)))


def remove_stale_temporaries(output_dir: str) -> int:
  """Deletes temporary files a killed run left; returns how many."""
  removed = 0
  for folder in (output_dir, os.path.join(output_dir, MANIFEST_DIR)):
    if not tf.io.gfile.isdir(folder):
      continue
    for name in tf.io.gfile.listdir(folder):
      if _TMP_MARK in name:
        tf.io.gfile.remove(os.path.join(folder, name))
        removed += 1
  return removed


def write_jsonl(path: str, rows: Sequence[Dict]) -> None:
  """One JSON object per line, written under a temporary name then renamed."""
  tmp = f'{path}{_TMP_MARK}{os.getpid()}'
  with tf.io.gfile.GFile(tmp, 'w') as f:
    f.write(''.join(json.dumps(r, sort_keys=True) + '\n' for r in rows))
  tf.io.gfile.rename(tmp, path, overwrite=True)


class ShardWriter:
  """Writes one shard's records and manifest rows, committing atomically."""

  def __init__(self, output_dir: str, spec: ShardSpec,
               encode: Callable[..., Encoded] = encode_video):
    self._dir = output_dir
    self._spec = spec
    self._encode = encode
    tf.io.gfile.makedirs(os.path.join(output_dir, MANIFEST_DIR))
    suffix = f'{_TMP_MARK}{os.getpid()}'
    self._tmp = os.path.join(output_dir, spec.filename + suffix)
    self._writer = records.RecordFile(self._tmp)
    self.rows: List[Dict] = []
    self.frames = 0
    self.tasks_added = 0

  def add(self, result) -> None:
    """Writes a converted task's records (`encode` says which)."""
    encoded, rows, frames = self._encode(result)
    for record in encoded:
      self._writer.write(record)
    if isinstance(getattr(result, 'jpegs', None), records.Clip):
      result.jpegs.close()  # written: the spill file goes
    self.frames += frames
    self.rows.extend(rows)
    self.tasks_added += 1

  def commit(self) -> None:
    self._writer.close()
    final = os.path.join(self._dir, self._spec.filename)
    tf.io.gfile.rename(self._tmp, final, overwrite=True)
    if self._spec.inputs:  # before the piece, which marks completion
      rerun.write_fingerprint(self._dir, MANIFEST_DIR, self._spec.filename,
                              self._spec.inputs)
    write_jsonl(os.path.join(self._dir, self._spec.manifest_piece), self.rows)


def write_shard(output_dir: str, spec: ShardSpec, results: Iterable,
                encode: Callable[..., Encoded] = encode_video) -> List[Dict]:
  """Writes a whole shard from results in task order; returns its rows."""
  writer = ShardWriter(output_dir, spec, encode)
  for result in results:
    writer.add(result)
  writer.commit()
  return writer.rows


def read_manifest_piece(output_dir: str, spec: ShardSpec) -> List[Dict]:
  with tf.io.gfile.GFile(os.path.join(output_dir, spec.manifest_piece)) as f:
    return [json.loads(line) for line in f if line.strip()]


def write_manifest(output_dir: str, specs: Sequence[ShardSpec]) -> List[Dict]:
  """Joins the pieces of all shards, in shard order, into manifest.jsonl,
  and writes the folder's record index (`cvrl.data.record_index`): every
  shard's record count (one record per row converted ok) and byte size,
  what a training job counts from instead of reading the records."""
  rows, entries = [], {}
  for spec in specs:
    piece = read_manifest_piece(output_dir, spec)
    rows.extend(piece)
    records_written = sum(r['status'] == decoder.OK for r in piece)
    name, entry = record_index.shard_entry(
        os.path.join(output_dir, spec.filename), records_written)
    entries[name] = entry
  write_jsonl(os.path.join(output_dir, MANIFEST_FILE), rows)
  record_index.write(output_dir, entries)
  return rows
