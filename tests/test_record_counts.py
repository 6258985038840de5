"""Record counts at job start come from the converter's record index, not
from reading the records: tested by the file-system calls and bytes it
costs on 1,024 shards; a restart and the other workers of a multi-worker
job count nothing again; a header scan, where one is left, reads 8 bytes a
record."""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from cvrl.data import dataset_size
from cvrl.data import record_index
from cvrl.data import video_sources
from tests.conftest import REPO_ROOT


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
  monkeypatch.setenv('CVRL_CACHE_DIR', str(tmp_path / 'cache'))
  monkeypatch.setattr(dataset_size, '_MEMO', {})


def _rchar() -> int:
  """Bytes this process has read through read syscalls (Linux)."""
  with open('/proc/self/io') as f:
    return next(int(l.split()[1]) for l in f if l.startswith('rchar'))


class _Calls:
  """Counts tf.io.gfile opens, reads and stats, and header scans."""

  def __init__(self, monkeypatch):
    self.opens = self.reads = self.stats = self.scans = 0
    real_gfile, real_stat = tf.io.gfile.GFile, tf.io.gfile.stat
    real_scan = video_sources.count_records
    calls = self

    class GFile(real_gfile):  # pylint: disable=missing-class-docstring

      def __init__(self, *args, **kwargs):
        calls.opens += 1
        super().__init__(*args, **kwargs)

      def read(self, *args):
        calls.reads += 1
        return super().read(*args)

    def stat(path):
      calls.stats += 1
      return real_stat(path)

    def scan(path):
      calls.scans += 1
      return real_scan(path)
    monkeypatch.setattr(tf.io.gfile, 'GFile', GFile)
    monkeypatch.setattr(tf.io.gfile, 'stat', stat)
    monkeypatch.setattr(video_sources, 'count_records', scan)


def _shards(folder, num_shards, records, size):
  os.makedirs(folder, exist_ok=True)
  paths = []
  for i in range(num_shards):
    path = os.path.join(folder, f'train-{i:05d}-of-{num_shards:05d}.tfrecord')
    with tf.io.TFRecordWriter(path) as writer:
      for k in range(records + i % 3):
        writer.write(bytes([k % 251]) * size)
    paths.append(path)
  return paths


def test_the_converter_indexes_what_it_wrote(synthetic_records):
  """convert_videos' record_index.json holds each shard's records, as tf.data
  reads them, and its bytes."""
  for split in ('train', 'val'):
    folder = os.path.join(synthetic_records, split)
    index = record_index.read(folder)
    files = sorted(tf.io.gfile.glob(f'{folder}/{split}-*.tfrecord'))
    assert sorted(index) == [os.path.basename(f) for f in files]
    for path in files:
      entry = index[os.path.basename(path)]
      assert entry['records'] == sum(1 for _ in tf.data.TFRecordDataset(path))
      assert entry['bytes'] == os.path.getsize(path)


def test_1024_shards_cost_a_stat_each_and_one_index_read(tmp_path,
                                                         monkeypatch):
  """The calls are a small multiple of the shards, none per record; the
  header scan of the same files costs a read per record."""
  paths = _shards(str(tmp_path / 'records'), 1024, records=20, size=64)
  counted = {p: 20 + i % 3 for i, p in enumerate(paths)}  # as written
  for path in paths[:: 128]:  # as tf.data reads them
    assert sum(1 for _ in tf.data.TFRecordDataset(path)) == counted[path]
  record_index.index_folders(paths, counted)  # what the converters write
  calls = _Calls(monkeypatch)
  before = _rchar()
  got = dataset_size.count_files(paths)
  read = _rchar() - before
  assert got == [counted[p] for p in paths]
  assert calls.scans == 0
  assert calls.stats == 1024  # one per shard: is it the indexed file?
  assert calls.opens <= 2 and calls.reads <= 2  # the index, the cache
  index_bytes = os.path.getsize(record_index.path_of(str(tmp_path /
                                                         'records')))
  assert read < 2 * index_bytes + 65536, read
  # Without the index: a header scan, 8 bytes read per record.
  os.remove(record_index.path_of(str(tmp_path / 'records')))
  monkeypatch.setattr(dataset_size, '_MEMO', {})
  monkeypatch.setenv('CVRL_CACHE_DIR', str(tmp_path / 'cache2'))
  before = _rchar()
  assert dataset_size.count_files(paths) == got
  assert calls.scans == 1024
  records = sum(got)
  assert 8 * records <= _rchar() - before < 8 * records + 1024 * 4096


def test_a_changed_shard_is_counted_again(tmp_path, monkeypatch):
  paths = _shards(str(tmp_path / 'records'), 3, records=4, size=16)
  record_index.index_folders(paths, {p: 4 + i % 3
                                     for i, p in enumerate(paths)})
  with tf.io.TFRecordWriter(paths[1]) as writer:  # rewritten: 2 records
    for _ in range(2):
      writer.write(b'x' * 16)
  calls = _Calls(monkeypatch)
  assert dataset_size.count_files(paths) == [4, 2, 6]
  assert calls.scans == 1


def test_the_header_scan_reads_8_bytes_a_record(tmp_path):
  """GFile refilled its 512 KiB buffer at every seek: with 2 MiB records
  counting read a quarter of the file."""
  path = _shards(str(tmp_path), 1, records=40, size=2 << 20)[0]
  before = _rchar()
  assert video_sources.count_records(path) == 40
  assert _rchar() - before < 40 * 64


def test_a_restart_counts_nothing_again(tmp_path, monkeypatch):
  """The job start's counts in the model dir: a restart (a new process:
  nothing in memory, no host cache) reads them, no index, no scan."""
  paths = _shards(str(tmp_path / 'records'), 5, records=3, size=8)
  shared = dataset_size.SharedCounts(str(tmp_path / 'run'))
  first = dataset_size.count_files(paths, shared=shared)
  assert os.path.exists(shared.path)
  monkeypatch.setattr(dataset_size, '_MEMO', {})
  monkeypatch.setenv('CVRL_CACHE_DIR', str(tmp_path / 'other_host'))
  calls = _Calls(monkeypatch)
  indexes = []
  monkeypatch.setattr(record_index, 'read',
                      lambda folder: indexes.append(folder) or {})
  assert dataset_size.count_files(paths, shared=shared) == first
  assert calls.scans == 0 and not indexes


_WORKER = r'''
import json, logging, sys
from absl import logging as absl_logging
from cvrl.configs import launch
from cvrl.data import dataset_size
absl_logging.set_verbosity(absl_logging.INFO)
files, model_dir, tf_config = sys.argv[1].split(','), sys.argv[2], sys.argv[3]
shared = dataset_size.SharedCounts(model_dir, launch.is_chief(tf_config),
                                   wait_s=120, poll_s=0.2)
print('COUNTS', json.dumps(dataset_size.count_files(files, shared=shared)))
'''


def test_two_workers_the_chief_counts_the_other_reads(tmp_path):
  """Records without an index on a 2-worker job: worker 1 starts first and
  waits; worker 0 (the chief) scans and writes the job's counts; worker 1
  takes them and scans nothing."""
  paths = _shards(str(tmp_path / 'records'), 4, records=5, size=32)
  cluster = {'worker': ['localhost:1', 'localhost:2']}
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=REPO_ROOT)

  def start(index):
    tf_config = json.dumps({'cluster': cluster,
                            'task': {'type': 'worker', 'index': index}})
    return subprocess.Popen(
        [sys.executable, '-c', _WORKER, ','.join(paths),
         str(tmp_path / 'run'), tf_config], cwd=REPO_ROOT, text=True,
        env=dict(env, CVRL_CACHE_DIR=str(tmp_path / f'cache{index}')),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  worker = start(1)
  err1 = ''
  for line in worker.stderr:  # it waits before the chief exists
    err1 += line
    if "waiting for the chief's" in line:
      break
  chief = start(0)
  out0, err0 = chief.communicate(timeout=300)
  out1, rest = worker.communicate(timeout=300)
  err1 += rest
  assert chief.returncode == worker.returncode == 0, err1 + err0
  want = [5, 6, 7, 5]
  assert f'COUNTS {json.dumps(want)}' in out0
  assert f'COUNTS {json.dumps(want)}' in out1
  assert 'scanned the headers of 4 files' in err0
  assert 'scanned' not in err1
  assert "4 from the chief's counts" in err1


def test_a_restart_keeps_the_schedule_of_the_first_start(tmp_path,
                                                         monkeypatch):
  """num_examples 0 (count at every start): a shard added between two
  starts of the same run is reported, and the first start's count, from
  which the schedule was derived, is kept."""
  from official.core import exp_factory  # pylint: disable=g-import-not-at-top
  from cvrl import registry_imports  # pylint: disable=g-import-not-at-top,unused-import  # noqa: F401
  folder = str(tmp_path / 'records')
  paths = _shards(folder, 3, records=4, size=8)
  shared = dataset_size.SharedCounts(str(tmp_path / 'run'))

  def start():
    monkeypatch.setattr(dataset_size, '_MEMO', {})  # a new process
    params = exp_factory.get_exp_config('cvrl_pretrain_demo')
    params.task.train_data.input_path = os.path.join(folder, '*.tfrecord')
    params.task.train_data.num_examples = 0
    lines = dataset_size.check(params, ['train_data'], shared=shared)
    return params.task.train_data.num_examples, '\n'.join(lines)
  first, _ = start()
  assert first == sum(dataset_size.count_files(paths))
  with tf.io.TFRecordWriter(os.path.join(folder, 'extra.tfrecord')) as w:
    for _ in range(7):
      w.write(b'x')
  kept, text = start()
  assert kept == first
  assert (f"task.train_data.num_examples={first} kept from the run's first "
          f'start although {first + 7} records are counted now') in text
  # Another run (another model dir) counts what is there.
  shared = dataset_size.SharedCounts(str(tmp_path / 'new_run'))
  assert start()[0] == first + 7
