"""Record counts written beside TFRecord shards, so that a job can learn
how many records a dataset holds without reading it.

The schedule needs the number of training records (epochs x records /
batch). Counting them means a read per record; on gs:// each such read can
pull TensorFlow's whole GCS read buffer (64 MiB by default), so counting
K600 (~392,000 videos, terabytes) by its record headers streams the split.
The converters know every shard's count when they close it, and write

  <folder>/record_index.json
  {"format": "cvrl.record_index", "version": 1,
   "shards": {"train-00000-of-01024.tfrecord": {"records": 383,
                                                "bytes": 912345678}, ...}}

in every output folder (`tfrecords_tools.convert_videos`, `convert_ava`,
local or Beam; `inspect_tfrecords --write_index` for records made by other
tools). `counts(files)` then costs one small read per folder and one stat
per file: an entry is used only when the file still has the bytes it had
when it was counted, so a shard rewritten by other means is counted again.
"""

import json
import os
from typing import Dict, Iterable, List, Optional, Tuple

import tensorflow as tf

INDEX_FILE = 'record_index.json'
FORMAT = 'cvrl.record_index'


def path_of(folder: str) -> str:
  return os.path.join(folder, INDEX_FILE)


def read(folder: str) -> Dict[str, Dict[str, int]]:
  """{shard name: {'records', 'bytes'}} of a folder's index; {} if it has
  none or it cannot be read (the files are then counted by other means)."""
  try:
    with tf.io.gfile.GFile(path_of(folder)) as f:
      data = json.load(f)
  except (tf.errors.OpError, ValueError):
    return {}
  if not isinstance(data, dict) or data.get('format') != FORMAT:
    return {}
  shards = data.get('shards')
  return shards if isinstance(shards, dict) else {}


def write(folder: str, entries: Dict[str, Tuple[int, int]],
          merge: bool = True) -> str:
  """Writes (or updates) a folder's index: entries {shard name: (records,
  bytes)}; with `merge`, the folder's other entries are kept. Written to a
  temporary name, then renamed (a reader never sees half an index)."""
  shards = dict(read(folder)) if merge else {}
  for name, (records, size) in entries.items():
    shards[name] = {'records': int(records), 'bytes': int(size)}
  path = path_of(folder)
  tmp = f'{path}.tmp-{os.getpid()}'
  with tf.io.gfile.GFile(tmp, 'w') as f:
    json.dump({'format': FORMAT, 'version': 1,
               'shards': dict(sorted(shards.items()))}, f, indent=0)
  tf.io.gfile.rename(tmp, path, overwrite=True)
  return path


def counts(files: Iterable[str], sizes: Dict[str, int]
           ) -> Tuple[Dict[str, int], List[str]]:
  """({file: records} of the files an index vouches for, the others).

  sizes: {file: its byte size now} (the caller's stats). One index read per
  folder; an entry counts only if its 'bytes' equal the file's size."""
  by_folder: Dict[str, List[str]] = {}
  for path in files:
    by_folder.setdefault(os.path.dirname(path), []).append(path)
  found, missing = {}, []
  for folder, paths in by_folder.items():
    index = read(folder)
    for path in paths:
      entry = index.get(os.path.basename(path))
      if entry is not None and entry.get('bytes') == sizes.get(path):
        found[path] = int(entry['records'])
      else:
        missing.append(path)
  return found, missing


def shard_entry(path: str, records: int) -> Tuple[str, Tuple[int, int]]:
  """(name, (records, bytes)) for a shard just written at `path`."""
  return os.path.basename(path), (records, tf.io.gfile.stat(path).length)


def index_folders(paths: Iterable[str], counted: Dict[str, int],
                  folders: Optional[Iterable[str]] = None) -> List[str]:
  """Writes the index of every folder of `paths` from `counted` (a scan's
  result); returns the index files written."""
  entries: Dict[str, Dict[str, Tuple[int, int]]] = {}
  for path in paths:
    if path in counted:
      name, entry = shard_entry(path, counted[path])
      entries.setdefault(os.path.dirname(path), {})[name] = entry
  wanted = set(folders) if folders is not None else set(entries)
  return [write(folder, entries[folder]) for folder in sorted(entries)
          if folder in wanted]
