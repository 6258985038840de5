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

Where the counts come from (`count_files`), first found first:

  1. this process: the job start's counts, reused by the input pipelines;
  2. the job's own counts, <model_dir>/record_counts.json: written by the
     job start (the chief's, on a multi-worker job), read by restarts and
     by the other workers, who wait for the chief's rather than count;
  3. the folders' record indexes (`record_index`, written by the
     converters): one small read per folder and a stat per file;
  4. this host's cache, $CVRL_CACHE_DIR or ~/.cache/cvrl;
  5. a header scan of what is left (records made by other tools): 8 bytes
     read per record, logged with how many files and how long it took
     (`inspect_tfrecords --write_index` indexes such a folder once).

Entries of 2 and 4 are used while the file's size and modification time
are unchanged, index entries while its size is.

A count at every start (num_examples <= 0) is the first start's on a
restart: <model_dir>/schedule_counts.json keeps it, and a different count
now (shards added or converted again between restarts) is reported in a
warning, not applied, so the learning-rate schedule does not move mid-run.
"""

import concurrent.futures
import dataclasses
import json
import os
import time
from typing import Callable, Dict, List, Optional, Sequence

from absl import logging
import tensorflow as tf

from cvrl import files
from cvrl.configs import base
from cvrl.configs import schedule
from cvrl.data import ava_files
from cvrl.data import record_index
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


# This process's counts: {path: [bytes, mtime, records]} (the module doc, 1).
_MEMO: Dict[str, list] = {}
SHARED_FILE = 'record_counts.json'
# The training counts that the run's first start derived its schedule from:
# a restart keeps them (a schedule must not move mid-run).
FIRST_START_FILE = 'schedule_counts.json'


@dataclasses.dataclass
class SharedCounts:
  """The job's counts in its model dir (the module doc, 2). The chief
  counts and writes them; another worker waits up to `wait_s` for the
  chief's, then counts itself (with a warning)."""
  model_dir: str
  is_chief: bool = True
  wait_s: float = 3600.0
  poll_s: float = 1.0

  @property
  def path(self) -> str:
    return os.path.join(self.model_dir, SHARED_FILE)

  def read(self) -> Dict[str, list]:
    return _read_cache(self.path)

  def write(self, entries: Dict[str, list]) -> None:
    _write_cache(self.path, {**self.read(), **entries})

  def first_start(self) -> Dict[str, int]:
    """The counted num_examples of the run's first start, by field."""
    return _read_cache(os.path.join(self.model_dir, FIRST_START_FILE))

  def record_first_start(self, field: str, count: int) -> None:
    if self.is_chief:
      path = os.path.join(self.model_dir, FIRST_START_FILE)
      _write_cache(path, {**_read_cache(path), field: count})


def _stamp(path: str) -> List[int]:
  stat = tf.io.gfile.stat(path)
  return [int(stat.length), int(stat.mtime_nsec)]


def _matching(entries: Dict[str, list], stamps: Dict[str, List[int]]
              ) -> Dict[str, int]:
  return {f: entries[f][2] for f, s in stamps.items()
          if f in entries and list(entries[f][:2]) == s}


def count_files(files: Sequence[str],
                cache_path: Optional[str] = None,
                shared: Optional[SharedCounts] = None,
                trust_process: bool = False) -> List[int]:
  """Records in each file (see the module doc for where from).

  trust_process: take this process's earlier counts without looking at the
  files again (the input pipelines, right after the job start counted)."""
  known = ({f: _MEMO[f][2] for f in files if f in _MEMO} if trust_process
           else {})
  todo = sorted({f for f in files if f not in known})
  if not todo:
    return [known[f] for f in files]
  start = time.time()
  # Threads: on gs:// every stat is a small remote call.
  with concurrent.futures.ThreadPoolExecutor(32) as pool:
    stamps = dict(zip(todo, pool.map(_stamp, todo)))
  sources = {}

  def take(name, found):
    found = {f: n for f, n in found.items() if f not in known}
    known.update(found)
    sources[name] = len(found)
  take('this process', _matching(_MEMO, stamps))
  if shared is not None:
    take('the job\'s counts', _matching(shared.read(), stamps))
  rest = [f for f in todo if f not in known]
  if rest:
    take('record indexes', record_index.counts(
        rest, {f: stamps[f][0] for f in rest})[0])
  cache_path = cache_path or os.path.join(cache_dir(), _CACHE_FILE)
  cache = _read_cache(cache_path)
  take('this host\'s cache', _matching(cache, stamps))
  rest = [f for f in todo if f not in known]
  if rest and shared is not None and not shared.is_chief:
    rest = _wait_for_chief(shared, rest, stamps, take, known)
  if rest:
    scan_start = time.time()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
      scanned = dict(zip(rest, pool.map(video_sources.count_records, rest)))
    logging.warning(
        'record counts: scanned the headers of %d files without a record '
        'index in %.1f s (%d records); python -m '
        'tfrecords_tools.inspect_tfrecords --input_path=... --write_index '
        'indexes them once', len(rest), time.time() - scan_start,
        sum(scanned.values()))
    take('scanned', scanned)
    for f, n in scanned.items():
      cache[f] = stamps[f] + [n]
    _write_cache(cache_path, cache)
  if shared is not None and shared.is_chief:
    shared.write({f: stamps[f] + [known[f]] for f in todo})
  _MEMO.update({f: stamps[f] + [known[f]] for f in todo})
  logging.info('record counts of %d files in %.1f s: %s', len(todo),
               time.time() - start, ', '.join(
                   f'{n} from {name}' for name, n in sources.items() if n))
  return [known[f] for f in files]


def _wait_for_chief(shared, rest, stamps, take, known) -> List[str]:
  """A non-chief worker: the chief's counts of `rest`, as they appear;
  what is still missing after `shared.wait_s`."""
  deadline = time.time() + shared.wait_s
  logging.info('record counts: waiting for the chief\'s %s', shared.path)
  while rest and time.time() < deadline:
    time.sleep(shared.poll_s)
    take('the chief\'s counts', _matching(shared.read(),
                                           {f: stamps[f] for f in rest}))
    rest = [f for f in rest if f not in known]
  if rest:
    logging.warning('record counts: the chief wrote no counts of %d files '
                    'in %.0f s; counting them here', len(rest), shared.wait_s)
  return rest


def count(input_path, cache_path: Optional[str] = None,
          shared: Optional[SharedCounts] = None) -> int:
  """Records matching an input path (comma-separated globs)."""
  return sum(count_files(video_sources.list_files(input_path), cache_path,
                         shared))


def _sections(task, names: Sequence[str]):
  for name in names:
    data = getattr(task, name, None)
    if (data is not None and hasattr(data, 'num_examples')
        and getattr(data, 'input_path', '')):
      yield name, data


def check(params, sections: Sequence[str] = ('train_data',),
          count_fn: Callable[[str], int] = count,
          shared: Optional[SharedCounts] = None) -> List[str]:
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
      counted = (count_fn(data.input_path) if shared is None else
                 count_fn(data.input_path, shared=shared))
    except video_sources.InputError as e:
      hint = ('; check every record with python -m '
              'tfrecords_tools.inspect_tfrecords --input_path=... --verify'
              if 'truncated' in str(e) else '')
      raise base.ConfigError(f'task.{name}.input_path: {e}{hint}') from e
    took = f'{time.time() - start:.1f} s'
    if counted == 0:
      raise base.ConfigError(f'task.{name}.input_path {data.input_path!r}: '
                             'its files hold no records')
    lines.extend(_batch_note(name, data, counted))
    configured = data.num_examples
    first = (shared.first_start().get(field)
             if shared is not None and data.is_training else None)
    if configured <= 0 and first is not None and first != counted:
      # Shards added or converted again since the run started: the
      # learning-rate schedule keeps the first start's count.
      data.num_examples = first
      lines.append(
          f'dataset: WARNING: {field}={first} kept from the run\'s first '
          f'start although {counted} records are counted now: a restart '
          'keeps the schedule it started with (start a new --model_dir to '
          'train with the new count)')
      continue
    if configured <= 0 or not data.is_training:
      data.num_examples = counted
      was = f', was {configured}' if configured > 0 else ''
      lines.append(f'dataset: {field}={counted} (counted in {took}{was})')
      if configured <= 0 and first is None and shared is not None and (
          data.is_training):
        shared.record_first_start(field, counted)
      continue
    off = abs(configured - counted) / max(counted, 1)
    if off <= TOLERANCE:
      lines.append(f'dataset: {field}={configured}, {counted} records '
                   f'counted ({off:.1%} apart, within {TOLERANCE:.0%})')
      continue
    if not schedule.depends_on_size(params):
      data.num_examples = counted
      lines.append(
          f'dataset: {field}={counted} counted (the recipe says '
          f'{configured}); this run\'s steps, warmup, decay and intervals '
          f'are explicit (trainer.train_steps={params.trainer.train_steps}), '
          'so the count does not change them')
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


def _batch_note(name: str, data, counted: int) -> List[str]:
  """One line when a batch holds more examples than the input has records
  (a smoke test on a few records: batches repeat them)."""
  batch = getattr(data, 'global_batch_size', 0)
  if batch <= counted:
    return []
  line = (f'dataset: task.{name}: {counted} records for a global batch of '
          f'{batch}: ' + ('batches repeat records (fine for a smoke test, '
                          'not for training)' if getattr(data, 'repeat', True)
                          else 'one partial batch'))
  logging.warning('%s', line)
  return [line]


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
    listed = video_sources.list_files(train.input_path)
    if not listed:
      raise video_sources.InputError(
          f'{train.input_path!r} names no file (model.head.num_classes=0 '
          'reads the label map beside the training records)')
    first = listed[0]
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
