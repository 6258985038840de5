"""The dataset size is checked: records counted at job start, num_examples
filled in or refused when off by more than 1%, counts cached per file."""

import os

import pytest
import tensorflow as tf

from official.core import exp_factory

from cvrl import registry_imports  # pylint: disable=unused-import  # noqa: F401
from cvrl.configs import base
from cvrl.configs import launch
from cvrl.configs import precision
from cvrl.data import dataset_size
from cvrl.data import video_sources


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
  monkeypatch.setenv('CVRL_CACHE_DIR', str(tmp_path / 'cache'))


def _records(pattern):
  """The number of records as tf.data reads them (the reference)."""
  files = tf.io.gfile.glob(pattern)
  return sum(1 for _ in tf.data.TFRecordDataset(files))


def _demo(records, **train):
  params = exp_factory.get_exp_config('cvrl_pretrain_demo')
  params.task.train_data.input_path = f'{records}/train/train-*.tfrecord'
  params.task.validation_data.input_path = f'{records}/val/val-*.tfrecord'
  for key, value in train.items():
    setattr(params.task.train_data, key, value)
  return params


def test_count_equals_what_tf_data_reads(synthetic_records):
  for split in ('train', 'val'):
    pattern = f'{synthetic_records}/{split}/{split}-*.tfrecord'
    assert dataset_size.count(pattern) == _records(pattern) > 0


def test_zero_means_count_and_the_schedule_follows(synthetic_records):
  params = _demo(synthetic_records, num_examples=0)
  lines = launch.prepare(params, precision.Devices(), tf_config='')
  want = _records(f'{synthetic_records}/train/train-*.tfrecord')
  assert params.task.train_data.num_examples == want
  assert any(f'task.train_data.num_examples={want} (counted' in l
             for l in lines)
  batch = params.task.train_data.global_batch_size
  assert params.trainer.train_steps == round(
      params.trainer.epochs * want / batch)


def test_a_size_far_from_the_count_stops_the_job(synthetic_records):
  want = _records(f'{synthetic_records}/train/train-*.tfrecord')
  params = _demo(synthetic_records, num_examples=100 * want)
  with pytest.raises(base.ConfigError) as error:
    launch.prepare(params, precision.Devices(), check_sizes=('train_data',),
                   tf_config='')
  message = str(error.value)
  assert f'task.train_data.num_examples={100 * want}' in message
  assert f'holds {want} records' in message
  assert f'Set task.train_data.num_examples={want}' in message
  assert 'task.train_data.check_num_examples=false' in message


def test_within_one_percent_is_kept_and_the_opt_out_keeps_any(tmp_path):
  path = str(tmp_path / 'train-00000-of-00001.tfrecord')
  with tf.io.TFRecordWriter(path) as writer:
    for i in range(200):
      writer.write(b'x' * i)
  params = _demo(str(tmp_path), num_examples=202)  # 1% off
  params.task.train_data.input_path = path
  lines = dataset_size.check(params, ('train_data',))
  assert params.task.train_data.num_examples == 202
  assert '200 records counted (1.0% apart' in lines[0]
  params.task.train_data.num_examples = 203  # 1.5% off
  with pytest.raises(base.ConfigError, match='holds 200 records'):
    dataset_size.check(params, ('train_data',))
  params.task.train_data.check_num_examples = False
  lines = dataset_size.check(params, ('train_data',))
  assert params.task.train_data.num_examples == 203
  assert 'kept although 200 records were counted' in lines[0]


def test_validation_size_becomes_the_count(synthetic_records):
  params = _demo(synthetic_records, num_examples=0)
  params.task.validation_data.num_examples = 20_000  # a recipe's figure
  dataset_size.check(params, ('validation_data',))
  assert params.task.validation_data.num_examples == _records(
      f'{synthetic_records}/val/val-*.tfrecord')


def test_counts_are_cached_per_unchanged_file(tmp_path, monkeypatch):
  path = str(tmp_path / 'a.tfrecord')
  with tf.io.TFRecordWriter(path) as writer:
    for _ in range(7):
      writer.write(b'record')
  cache = str(tmp_path / 'counts.json')
  assert dataset_size.count_files([path], cache) == [7]
  calls = []
  real = video_sources.count_records
  monkeypatch.setattr(video_sources, 'count_records',
                      lambda p: calls.append(p) or real(p))
  assert dataset_size.count_files([path], cache) == [7]
  assert not calls  # read from the cache
  with tf.io.TFRecordWriter(path) as writer:  # rewritten: 3 records
    for _ in range(3):
      writer.write(b'another record')
  assert dataset_size.count_files([path], cache) == [3]
  assert calls == [path]


def test_counts_records_on_a_remote_file_system(synthetic_records):
  # ram:// stands in for gs:// (same tf.io.gfile API).
  root = 'ram://dataset_size/train'
  tf.io.gfile.makedirs(root)
  local = tf.io.gfile.glob(f'{synthetic_records}/train/train-*.tfrecord')
  for path in local:
    tf.io.gfile.copy(path, f'{root}/{os.path.basename(path)}', overwrite=True)
  assert dataset_size.count(f'{root}/train-*.tfrecord') == _records(
      f'{synthetic_records}/train/train-*.tfrecord')


def test_a_pattern_that_matches_nothing_names_the_field(tmp_path):
  params = _demo(str(tmp_path), num_examples=0)
  with pytest.raises(base.ConfigError,
                     match='task.train_data.input_path.*matches no file'):
    dataset_size.check(params, ('train_data',))
