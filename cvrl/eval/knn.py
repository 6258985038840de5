"""Leave-one-out weighted kNN top-1: the pretraining task's monitor.

A plain function of arrays, so tests compare it with a loop written out.
"""

import numpy as np


def knn_top1(features: np.ndarray, labels: np.ndarray, k: int = 20,
             temperature: float = 0.07, block_size: int = 1024) -> float:
  """Leave-one-out weighted kNN top-1 accuracy on one labelled set.

  Cosine similarity of l2-normalised features; each sample's k nearest
  *other* samples vote for their labels with weight exp(similarity / T)
  (Wu et al. 2018, as the kNN monitors of self-supervised codebases); ties in
  the vote go to the smaller class index.

  Args:
    features: [N, D]; labels: [N] ints. N >= 2.
  Returns:
    The fraction of samples whose vote equals their label.
  """
  features = np.asarray(features, np.float64)
  labels = np.asarray(labels).astype(np.int64)
  if features.ndim != 2 or len(features) != len(labels) or len(labels) < 2:
    raise ValueError(f'knn_top1: features {features.shape} and labels '
                     f'{labels.shape} must be [N, D] and [N] with N >= 2')
  norms = np.linalg.norm(features, axis=1, keepdims=True)
  unit = features / np.maximum(norms, 1e-12)
  k = min(k, len(labels) - 1)
  num_classes = int(labels.max()) + 1
  correct = 0
  # Blocks of queries: memory stays block x N (a Kinetics validation set of
  # 20k videos would need 3 GB for the full similarity matrix).
  for start in range(0, len(labels), block_size):
    rows = np.arange(start, min(start + block_size, len(labels)))
    similarity = unit[rows] @ unit.T
    similarity[np.arange(len(rows)), rows] = -np.inf  # leave itself out
    # The k most similar (their order does not change the vote); linear
    # time per query, unlike a full sort.
    neighbours = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    weights = np.exp(
        np.take_along_axis(similarity, neighbours, 1) / temperature)
    votes = np.zeros((len(rows), num_classes))
    np.add.at(votes, (np.arange(len(rows))[:, None], labels[neighbours]),
              weights)
    correct += int(np.sum(np.argmax(votes, axis=1) == labels[rows]))
  return correct / len(labels)
