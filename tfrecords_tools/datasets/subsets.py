"""Class-balanced, seed-deterministic subsets of video TFRecords.

Paper section 4.1: "We sample 1% and 10% videos from each class in the
training set, forming two balanced subsets." Each class keeps
round(fraction x its count) videos (at least 1); which ones depends only on
the clip ids and the seed (ids are sorted, then permuted with the seed), so
the same seed gives the same subset whatever the shard order. The command
line is `tfrecords_tools.make_subset`.
"""

import collections
import os
from typing import Dict, List, Sequence

import numpy as np
import tensorflow as tf

from cvrl.data import features
from tfrecords_tools.conversion import shards


def id_and_label(serialized: bytes):
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
      clip_id, label = id_and_label(raw)
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
      clip_id, _ = id_and_label(raw)
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
