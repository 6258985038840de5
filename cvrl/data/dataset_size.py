"""How many records an input path holds, checked against the config.

The schedule is derived from `num_examples` (epochs x examples / batch), so
a wrong count trains the wrong number of epochs silently: 24,000 set for
240 records trains 100x too long, and a recipe's Kinetics count (235,520)
left on a copy that misses 7% of the videos trains 7% too long. At job start
(`cvrl.configs.launch.prepare`) the records matching each input path are
counted from their length headers (no decoding), and

  num_examples <= 0              becomes the count ("count them")
  within 1% of the count         kept (a recipe's round figure)
  further off                    ConfigError naming both numbers and the
                                 override, unless check_num_examples=false
                                 (a deliberately partial epoch)

Counting reads 8 bytes per record, one small read per record on gs://; the
counts are cached per file (path, size, modification time) in
$CVRL_CACHE_DIR or ~/.cache/cvrl, so a rerun of a job does not rescan.
"""

import concurrent.futures
import json
import os
import time
from typing import Callable, Dict, List, Optional, Sequence

from absl import logging
import tensorflow as tf

from cvrl import files
from cvrl.configs import base
from cvrl.data import ava_files
from cvrl.data import video_sources

# How far a configured size may be from the count before the job stops.
TOLERANCE = 0.01
_CACHE_FILE = 'record_counts.json'


def cache_dir() -> str:
  return os.environ.get('CVRL_CACHE_DIR') or os.path.join(
      os.path.expanduser('~'), '.cache', 'cvrl')


def _read_cache(path: str) -> Dict[str, list]:
  try:
    with tf.io.gfile.GFile(path) as f:
      return json.load(f)
  except (tf.errors.OpError, ValueError):
    return {}  # no cache yet, or a damaged one: counted again


def _write_cache(path: str, cache: Dict[str, list]) -> None:
  try:
    tf.io.gfile.makedirs(os.path.dirname(path))
    tmp = f'{path}.tmp-{os.getpid()}'
    with tf.io.gfile.GFile(tmp, 'w') as f:
      json.dump(cache, f)
    tf.io.gfile.rename(tmp, path, overwrite=True)
  except tf.errors.OpError as e:  # a read-only home: counting still worked
    logging.warning('record counts not cached in %s: %s', path, e)


def count_files(files: Sequence[str],
                cache_path: Optional[str] = None) -> List[int]:
  """Records in each file, from the cache where the file is unchanged."""
  cache_path = cache_path or os.path.join(cache_dir(), _CACHE_FILE)
  cache = _read_cache(cache_path)

  def stamp(path):
    stat = tf.io.gfile.stat(path)
    return [int(stat.length), int(stat.mtime_nsec)]

  # Threads: on gs:// every stat and header is a small remote read.
  with concurrent.futures.ThreadPoolExecutor(32) as pool:
    stamps = list(pool.map(stamp, files))
    todo = [i for i, (f, s) in enumerate(zip(files, stamps))
            if cache.get(f, [None, None, None])[:2] != s]
    counted = list(pool.map(video_sources.count_records,
                            [files[i] for i in todo]))
  for i, n in zip(todo, counted):
    cache[files[i]] = stamps[i] + [n]
  if todo:
    _write_cache(cache_path, cache)
  return [cache[f][2] for f in files]


def count(input_path, cache_path: Optional[str] = None) -> int:
  """Records matching an input path (comma-separated globs)."""
  return sum(count_files(video_sources.list_files(input_path), cache_path))


def _sections(task, names: Sequence[str]):
  for name in names:
    data = getattr(task, name, None)
    if (data is not None and hasattr(data, 'num_examples')
        and getattr(data, 'input_path', '')):
      yield name, data


def check(params, sections: Sequence[str] = ('train_data',),
          count_fn: Callable[[str], int] = count) -> List[str]:
  """Counts the records of `sections` of params.task and checks or fills in
  their num_examples (see the module doc); returns lines for the log.

  Raises ConfigError naming the field, both numbers and the override when a
  configured training size is off by more than TOLERANCE. A validation
  size only labels the logs, so it becomes the count whatever it was.
  """
  lines = []
  for name, data in _sections(params.task, sections):
    field = f'task.{name}.num_examples'
    start = time.time()
    try:
      counted = count_fn(data.input_path)
    except video_sources.InputError as e:
      hint = ('; check every record with python -m '
              'tfrecords_tools.inspect_tfrecords --input_path=... --verify'
              if 'truncated' in str(e) else '')
      raise base.ConfigError(f'task.{name}.input_path: {e}{hint}') from e
    took = f'{time.time() - start:.1f} s'
    configured = data.num_examples
    if configured <= 0 or not data.is_training:
      data.num_examples = counted
      was = f', was {configured}' if configured > 0 else ''
      lines.append(f'dataset: {field}={counted} (counted in {took}{was})')
      continue
    off = abs(configured - counted) / max(counted, 1)
    if off <= TOLERANCE:
      lines.append(f'dataset: {field}={configured}, {counted} records '
                   f'counted ({off:.1%} apart, within {TOLERANCE:.0%})')
      continue
    if getattr(data, 'check_num_examples', True):
      raise base.ConfigError(
          f'{field}={configured} but task.{name}.input_path '
          f'{data.input_path!r} holds {counted} records ({off:.0%} apart): '
          f'the schedule would train {configured / max(counted, 1):.2f}x the '
          f'epochs asked for. Set {field}={counted} (or 0 to count at every '
          f'start), or task.{name}.check_num_examples=false for a '
          'deliberately partial epoch')
    lines.append(f'dataset: {field}={configured} kept although {counted} '
                 f'records were counted (check_num_examples=false)')
  return lines


# Written by tfrecords_tools.convert_videos beside its shards: one class name
# per line, the line number being the label.
LABEL_MAP = 'label_map.txt'


def resolve_num_classes(params, required: bool = True) -> List[str]:
  """model.head.num_classes 0 (and the data sections' num_classes 0)
  becomes the number of classes in the label_map.txt beside the first
  training record; returns lines for the log. ConfigError naming the
  field when there is no such file, unless not `required` (jobs that only
  run the backbone, such as feature export): then nothing changes."""
  model = getattr(params.task, 'model', None)
  head = getattr(model, 'head', None)
  train = getattr(params.task, 'train_data', None)
  if head is None or getattr(head, 'num_classes', 1) != 0 or train is None:
    return []
  try:
    first = video_sources.list_files(train.input_path)[0]
  except video_sources.InputError as e:
    if not required:
      return []
    raise base.ConfigError(f'task.train_data.input_path: {e}') from e
  path = os.path.join(os.path.dirname(first), LABEL_MAP)
  if not files.is_file(path):
    if not required:
      return []
    raise base.ConfigError(
        f'task.model.head.num_classes=0 reads the number of classes from '
        f'{path}, which does not exist: set task.model.head.num_classes, '
        'or convert the records with tfrecords_tools.convert_videos (it '
        'writes that file)')
  try:
    count = len(ava_files.read_class_names(path))
  except ava_files.AnnotationError as e:
    raise base.ConfigError(f'task.model.head.num_classes=0: {e}') from e
  head.num_classes = count
  for name in ('train_data', 'validation_data'):
    data = getattr(params.task, name, None)
    if data is not None and getattr(data, 'num_classes', -1) == 0:
      data.num_classes = count
  return [f'dataset: task.model.head.num_classes={count} (classes in {path})']
