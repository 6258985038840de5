"""inspect_tfrecords: summary figures, and bad files named by shard and record."""

import os

import pytest
import tensorflow as tf

from cvrl.data import features
from tests.conftest import run_module
from tfrecords_tools.conversion import job
from tfrecords_tools.datasets import inspection
from tfrecords_tools.conversion import sources
from tfrecords_tools.conversion import video_frames


@pytest.fixture(scope='module')
def converted(synthetic_videos, tmp_path_factory):
  out = str(tmp_path_factory.mktemp('tfr'))
  tasks = job.read_tasks(
      os.path.join(synthetic_videos, 'train.csv'), synthetic_videos, 'train')
  job.convert(tasks, out, sources.build_label_map(tasks),
                         video_frames.ConversionOptions(short_side=0), 2)
  return out


def _shards(out):
  return sorted(tf.io.gfile.glob(os.path.join(out, 'train-*.tfrecord')))


def test_summary_counts(converted):
  report = inspection.inspect_files(_shards(converted), verify=True)
  assert not report.errors
  assert report.shards == 2 and report.videos == 24
  assert set(report.labels.values()) == {3}  # 3 train videos per class
  assert report.frames == [24] * 24
  assert report.sizes == {(32, 32): 24}
  assert report.fps == {12.0: 24}
  text = report.format()
  assert 'median 24' in text and 'move_left: 3' in text
  assert 'fps: 12 (24)' in text and 'mixed frame rates' not in text


def test_mixed_frame_rates_are_reported_with_their_spread():
  report = inspection.Report()
  report.fps.update({25.0: 70, 29.97: 20, 30.0: 8, 60.0: 1, -1: 1})
  text = report.format()
  assert 'fps: unknown (1), 25 (70), 29.97 (20), 30 (8), 60 (1)' in text
  assert ('fps spread: min 25, median 25, max 60 over 4 rates: WARNING '
          'mixed frame rates') in text and '--fps=25' in text
  report.fps.update({float(r): 1 for r in range(100, 112)})
  assert '... 7 more rates' in report.format()


def test_truncated_shard_fails_naming_shard_and_record(converted, tmp_path):
  src = _shards(converted)[1]
  data = open(src, 'rb').read()
  bad = tmp_path / 'train-00001-of-00002.tfrecord'
  bad.write_bytes(data[:len(data) * 2 // 3])
  report = inspection.inspect_files([_shards(converted)[0], str(bad)],
                                           verify=True)
  assert len(report.errors) == 1
  assert str(bad) in report.errors[0] and 'truncated' in report.errors[0]
  assert 'record 8' in report.errors[0]  # 12 records; the cut is in the 9th
  result = run_module('tfrecords_tools.inspect_tfrecords',
                      f'--input_path={tmp_path}/*.tfrecord', '--verify',
                      check=False)
  assert result.returncode == 1
  assert 'train-00001-of-00002.tfrecord record 8' in result.stdout


def test_bad_jpeg_and_missing_feature_are_named(converted, tmp_path):
  raw = next(tf.data.TFRecordDataset(_shards(converted)[0]).as_numpy_iterator())
  example = tf.train.SequenceExample.FromString(raw)
  frames = example.feature_lists.feature_list[features.IMAGE_KEY].feature
  frames[5].bytes_list.value[0] = b'\xff\xd8 not really a jpeg'
  no_images = tf.train.SequenceExample.FromString(raw)
  del no_images.feature_lists.feature_list[features.IMAGE_KEY]
  path = str(tmp_path / 'bad.tfrecord')
  with tf.io.TFRecordWriter(path) as writer:
    writer.write(raw)
    writer.write(example.SerializeToString())
    writer.write(no_images.SerializeToString())
    writer.write(b'garbage that is no proto \xff\xff')
  plain = inspection.inspect_files([path], verify=False)
  verified = inspection.inspect_files([path], verify=True)
  assert any('record 2' in e and features.IMAGE_KEY in e for e in plain.errors)
  assert any('record 3' in e for e in plain.errors)
  assert not any('frame 5' in e for e in plain.errors)  # only --verify decodes
  assert any(f'{path} record 1: frame 5 does not decode' in e
             for e in verified.errors)


def test_no_match_is_a_usage_error(tmp_path):
  result = run_module('tfrecords_tools.inspect_tfrecords',
                      f'--input_path={tmp_path}/none-*.tfrecord', check=False)
  assert result.returncode == 2 and 'no file matches' in result.stderr
