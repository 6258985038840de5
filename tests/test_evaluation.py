"""Multi-view averaging and the kNN monitor against hand computations."""

import numpy as np
import pytest
import tensorflow as tf

from cvrl.eval import knn
from cvrl.eval import multiview


def _softmax(x):
  e = np.exp(x - x.max(axis=-1, keepdims=True))
  return e / e.sum(axis=-1, keepdims=True)


def test_30_view_average_equals_the_hand_computation():
  rng = np.random.default_rng(0)
  logits = rng.normal(0, 3, size=(2 * 30, 7)).astype(np.float32)
  got = multiview.average_view_probabilities(tf.constant(logits), 30).numpy()
  want = np.stack([_softmax(logits[v * 30:(v + 1) * 30]).mean(axis=0)
                   for v in range(2)])
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-6)
  # Softmax first, then average: not the softmax of the averaged logits.
  averaged_logits = _softmax(logits.reshape(2, 30, 7).mean(axis=1))
  assert np.abs(got - averaged_logits).max() > 1e-3


def test_views_of_a_video_are_consecutive_rows():
  logits = np.zeros((2 * 3, 2), np.float32)
  logits[:3, 0] = 10.0  # video 0: class 0 in all its views
  logits[3:, 1] = 10.0
  probs = multiview.average_view_probabilities(tf.constant(logits), 3)
  assert probs.numpy().argmax(axis=1).tolist() == [0, 1]


def test_fold_views_keeps_every_view():
  images = tf.reshape(tf.range(2 * 3 * 4 * 2 * 2 * 3, dtype=tf.float32),
                      [2, 3, 4, 2, 2, 3])
  folded, views = multiview.fold_views(images)
  assert views == 3 and folded.shape == (6, 4, 2, 2, 3)
  np.testing.assert_array_equal(folded[4], images[1, 1])
  single, one = multiview.fold_views(images[:, 0])
  assert one == 1 and single.shape == (2, 4, 2, 2, 3)


def _knn_by_loops(features, labels, k, temperature):
  """Independent reference: per-sample loops, no vectorisation."""
  unit = [f / np.linalg.norm(f) for f in features]
  correct = 0
  for i in range(len(labels)):
    sims = [(float(np.dot(unit[i], unit[j])), j) for j in range(len(labels))
            if j != i]
    sims.sort(key=lambda s: (-s[0], s[1]))
    votes = {}
    for sim, j in sims[:k]:
      votes[labels[j]] = votes.get(labels[j], 0.0) + np.exp(sim / temperature)
    best = max(sorted(votes), key=lambda c: votes[c])
    correct += best == labels[i]
  return correct / len(labels)


def test_knn_matches_a_loop_implementation():
  rng = np.random.default_rng(1)
  centres = rng.normal(size=(4, 16))
  labels = rng.integers(0, 4, size=60)
  features = centres[labels] + rng.normal(0, 1.2, size=(60, 16))
  for k in (1, 5, 20):
    want = _knn_by_loops(features, labels, k, 0.07)
    assert knn.knn_top1(features, labels, k, 0.07) == pytest.approx(
        want)
    # Blocks of queries give the same answer as one block.
    assert knn.knn_top1(features, labels, k, 0.07,
                               block_size=7) == pytest.approx(want)
  # Well separated clusters: perfect; a label that disagrees with its
  # neighbours: counted wrong.
  tight = centres[labels] + rng.normal(0, 0.01, size=(60, 16))
  assert knn.knn_top1(tight, labels, 5) == 1.0
  flipped = labels.copy()
  flipped[0] = (labels[0] + 1) % 4
  assert knn.knn_top1(tight, flipped, 5) == pytest.approx(59 / 60)


def test_knn_by_hand_on_four_points():
  # 1-NN: points 0,1 close (labels 0, 0); points 2,3 close (labels 1, 0).
  features = np.array([[1, 0.1], [1, 0.2], [0.1, 1], [0.2, 1]])
  labels = np.array([0, 0, 1, 0])
  # 0 -> 1 (0 ok), 1 -> 0 (ok), 2 -> 3 (label 0, wrong), 3 -> 2 (1, wrong)
  assert knn.knn_top1(features, labels, k=1) == 0.5


def test_knn_rejects_mismatched_inputs():
  with pytest.raises(ValueError, match='features'):
    knn.knn_top1(np.zeros((3, 2)), np.zeros(4))
