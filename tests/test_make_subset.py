"""make_subset: class-balanced, deterministic for a seed, order-independent."""

import collections
import os

import pytest
import tensorflow as tf

from cvrl.data import features
from tests import video_records
from tests.conftest import run_module
from tfrecords_tools.datasets import subsets


def _write(path, items):
  """items: (clip_id, label); one tiny frame per record."""
  frame = video_records.encode(video_records.textured_frame(8, 8))
  with tf.io.TFRecordWriter(path) as writer:
    for clip_id, label in items:
      example = tf.train.SequenceExample.FromString(
          video_records.sequence_example([frame], label))
      example.context.feature[features.CLIP_ID_KEY].bytes_list.value.append(
          clip_id.encode())
      writer.write(example.SerializeToString())


def _read(out_dir):
  labels = collections.Counter()
  ids = []
  for path in sorted(tf.io.gfile.glob(os.path.join(out_dir, '*.tfrecord'))):
    for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
      clip_id, label = subsets.id_and_label(raw)
      labels[label] += 1
      ids.append(clip_id)
  return labels, ids


@pytest.fixture(scope='module')
def full_split(tmp_path_factory):
  root = tmp_path_factory.mktemp('full')
  items = [(f'vid{label}_{k:03d}', label) for label in range(4)
           for k in range(40 + 10 * label)]
  _write(str(root / 'a.tfrecord'), items[::2])
  _write(str(root / 'b.tfrecord'), items[1::2])
  return [str(root / 'a.tfrecord'), str(root / 'b.tfrecord')]


def test_balanced_and_deterministic(full_split, tmp_path):
  chosen = subsets.make_subset(full_split, 0.1, str(tmp_path / 'x'), 0, 3,
                                   'train')
  labels, ids = _read(str(tmp_path / 'x'))
  assert labels == {0: 4, 1: 5, 2: 6, 3: 7}  # round(10% of 40, 50, 60, 70)
  assert sorted(ids) == chosen and ids == chosen  # shards in sorted order
  again = subsets.make_subset(full_split[::-1], 0.1, str(tmp_path / 'y'),
                                  0, 3, 'train')
  assert again == chosen
  for name in os.listdir(tmp_path / 'x'):
    assert (tmp_path / 'x' / name).read_bytes() == (
        tmp_path / 'y' / name).read_bytes()
  other = subsets.make_subset(full_split, 0.1, str(tmp_path / 'z'), 1, 3,
                                  'train')
  assert other != chosen


def test_one_percent_keeps_at_least_one_per_class(full_split, tmp_path):
  subsets.make_subset(full_split, 0.01, str(tmp_path), 0, 8, 'train')
  labels, _ = _read(str(tmp_path))
  assert labels == {0: 1, 1: 1, 2: 1, 3: 1}


def test_command_line_and_bad_fraction(full_split, tmp_path):
  pattern = os.path.join(os.path.dirname(full_split[0]), '*.tfrecord')
  result = run_module('tfrecords_tools.make_subset', f'--input_path={pattern}',
                      '--fraction=0.1', f'--output_dir={tmp_path}')
  assert 'make_subset: 22 videos' in result.stdout
  assert len((tmp_path / 'subset_ids.txt').read_text().split()) == 22
  with pytest.raises(ValueError, match='fraction'):
    subsets.choose({0: ['a']}, 1.5, 0)
