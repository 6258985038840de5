r"""Writes a class-balanced subset of video TFRecords (semi-supervised splits).

  python -m tfrecords_tools.make_subset \
      --pattern='/data/k400/tfrecords/train-*.tfrecord' --fraction=0.01 \
      --output_dir=/data/k400/tfrecords_1pct --seed=0

Paper section 4.1: "We sample 1% and 10% videos from each class in the
training set, forming two balanced subsets." Each class keeps
round(fraction x its count) videos (at least 1); which ones depends only on
the clip ids and --seed (ids are sorted, then permuted with the seed), so the
same seed gives the same subset whatever the shard order. Writes
train-{i:05d}-of-{n:05d}.tfrecord files and subset_ids.txt.
"""

import collections
import os
from typing import Dict, List, Sequence

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from cvrl.data import features
from tfrecords_tools import shards

_PATTERN = flags.DEFINE_string('pattern', None, 'Glob of the full split.')
_FRACTION = flags.DEFINE_float('fraction', 0.01, 'Share of each class, (0, 1].')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Where to write.')
_SEED = flags.DEFINE_integer('seed', 0, 'Which videos of each class.')
_NUM_SHARDS = flags.DEFINE_integer('num_shards', 8, 'Output shards.')
_SPLIT = flags.DEFINE_string('split', 'train', 'Name of the output split.')


def _id_and_label(serialized: bytes):
  example = tf.train.SequenceExample.FromString(serialized)
  ctx = example.context.feature
  if features.CLIP_ID_KEY not in ctx or features.LABEL_INDEX_KEY not in ctx:
    raise ValueError(f'record lacks {features.CLIP_ID_KEY} or '
                     f'{features.LABEL_INDEX_KEY}')
  return (ctx[features.CLIP_ID_KEY].bytes_list.value[0].decode('utf-8'),
          int(ctx[features.LABEL_INDEX_KEY].int64_list.value[0]))


def choose(ids_by_label: Dict[int, List[str]], fraction: float,
           seed: int) -> List[str]:
  """round(fraction x n) ids (at least 1) of each label, seeded, sorted."""
  if not 0 < fraction <= 1:
    raise ValueError(f'--fraction={fraction}: expected a value in (0, 1]')
  chosen = []
  for label in sorted(ids_by_label):
    ids = sorted(ids_by_label[label])
    count = max(1, int(round(fraction * len(ids))))
    rng = np.random.default_rng([seed, label])
    chosen += [ids[i] for i in sorted(rng.permutation(len(ids))[:count])]
  return sorted(chosen)


def make_subset(files: Sequence[str], fraction: float, output_dir: str,
                seed: int, num_shards: int, split: str) -> List[str]:
  """Writes the subset; returns the chosen clip ids."""
  ids_by_label = collections.defaultdict(list)
  for path in files:
    for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
      clip_id, label = _id_and_label(raw)
      ids_by_label[label].append(clip_id)
  chosen = choose(ids_by_label, fraction, seed)
  position = {clip_id: i for i, clip_id in enumerate(chosen)}
  count = max(1, min(num_shards, len(chosen)))
  tf.io.gfile.makedirs(output_dir)
  # Record i of the sorted subset goes to shard i * count // len(chosen), so
  # shard contents do not depend on the input's shard order.
  records: List[bytes] = [b''] * len(chosen)
  for path in files:
    for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
      clip_id, _ = _id_and_label(raw)
      if clip_id in position:
        records[position[clip_id]] = raw
  for s in range(count):
    lo, hi = s * len(chosen) // count, (s + 1) * len(chosen) // count
    name = shards.shard_filename(split, s, count)
    with tf.io.TFRecordWriter(os.path.join(output_dir, name)) as writer:
      for raw in records[lo:hi]:
        writer.write(raw)
  with tf.io.gfile.GFile(os.path.join(output_dir, 'subset_ids.txt'), 'w') as f:
    f.write(''.join(f'{clip_id}\n' for clip_id in chosen))
  return chosen


def main(argv):
  del argv
  if not _PATTERN.value or not _OUTPUT_DIR.value:
    raise app.UsageError('--pattern and --output_dir are required')
  files = sorted(tf.io.gfile.glob(_PATTERN.value))
  if not files:
    raise app.UsageError(f'--pattern {_PATTERN.value!r} matches no file')
  chosen = make_subset(files, _FRACTION.value, _OUTPUT_DIR.value, _SEED.value,
                       _NUM_SHARDS.value, _SPLIT.value)
  print(f'make_subset: {len(chosen)} videos -> {_OUTPUT_DIR.value}')


if __name__ == '__main__':
  app.run(main)
