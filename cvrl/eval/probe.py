"""Linear probe of exported features: what a representation keeps.

A multinomial logistic regression on standardised features (mean and
standard deviation of the training set; a linear classifier, as MAE's
batch-normalised probe), trained by full-batch gradient descent with an L2
penalty. The penalty is chosen on a held-out part of the training set (a
fixed, class-stratified split), then the probe is refitted on the whole
training set with it: the test set is used once, for the reported accuracy.

Use it to check that pretraining learned what users want (motion, objects)
rather than a shortcut (background, colour), against the same encoder at
random initialisation (`cvrl.tools.probe`, features from
`cvrl.tools.export_features`).
"""

import dataclasses
from typing import Dict, Sequence, Tuple

import numpy as np

DEFAULT_L2 = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)


@dataclasses.dataclass
class ProbeResult:
  test_top1: float
  train_top1: float
  l2: float
  validation_top1: Dict[float, float]  # per candidate penalty
  num_classes: int


def standardise(train: np.ndarray, *others: np.ndarray):
  """Features scaled by the training set's per-dimension mean and std."""
  mean = train.mean(axis=0)
  std = train.std(axis=0) + 1e-6
  return [(x - mean) / std for x in (train,) + others]


def fit_softmax(features: np.ndarray, labels: np.ndarray, num_classes: int,
                l2: float, steps: int = 500,
                learning_rate: float = 0.5) -> Tuple[np.ndarray, np.ndarray]:
  """(weights [D, C], bias [C]) minimising mean cross-entropy + l2/2 |W|^2.

  Full-batch gradient descent from zeros: deterministic, and the problem is
  convex, so the result does not depend on an initialisation.
  """
  n, dim = features.shape
  weights = np.zeros((dim, num_classes))
  bias = np.zeros(num_classes)
  onehot = np.eye(num_classes)[labels]
  for _ in range(steps):
    logits = features @ weights + bias
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    error = (probs - onehot) / n
    weights -= learning_rate * (features.T @ error + l2 * weights)
    bias -= learning_rate * error.sum(axis=0)
  return weights, bias


def accuracy(features, labels, weights, bias) -> float:
  return float(np.mean(np.argmax(features @ weights + bias, axis=1) == labels))


def stratified_holdout(labels: np.ndarray, fraction: float,
                       seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
  """(fit indices, held-out indices): `fraction` of each class held out."""
  rng = np.random.default_rng(seed)
  fit, held = [], []
  for c in np.unique(labels):
    members = rng.permutation(np.flatnonzero(labels == c))
    cut = int(round(fraction * len(members)))
    held.extend(members[:cut])
    fit.extend(members[cut:])
  return np.sort(np.array(fit, int)), np.sort(np.array(held, int))


def linear_probe(train_x: np.ndarray, train_y: np.ndarray,
                 test_x: np.ndarray, test_y: np.ndarray,
                 l2_grid: Sequence[float] = DEFAULT_L2,
                 holdout: float = 0.2, steps: int = 500,
                 seed: int = 0) -> ProbeResult:
  """Top-1 of a linear probe; the penalty is chosen on a split of train.

  Features [N, D] (or [N, V, D]: views averaged); labels ints >= 0.
  """
  train_x, test_x = (np.asarray(x, np.float64) for x in (train_x, test_x))
  if train_x.ndim == 3:
    train_x = train_x.mean(axis=1)
  if test_x.ndim == 3:
    test_x = test_x.mean(axis=1)
  train_y, test_y = np.asarray(train_y, int), np.asarray(test_y, int)
  if train_x.ndim != 2 or len(train_x) != len(train_y) or len(train_y) < 2:
    raise ValueError(f'train features {train_x.shape} / labels '
                     f'{train_y.shape}: expected [N, D] and [N], N >= 2')
  if train_y.min() < 0 or test_y.min() < 0:
    raise ValueError('labels must be >= 0 (unlabelled videos have -1)')
  num_classes = int(max(train_y.max(), test_y.max())) + 1
  fit_idx, held_idx = stratified_holdout(train_y, holdout, seed)
  scores = {}
  for l2 in l2_grid:
    fit_x, held_x = standardise(train_x[fit_idx], train_x[held_idx])
    weights, bias = fit_softmax(fit_x, train_y[fit_idx], num_classes, l2,
                                steps)
    scores[l2] = accuracy(held_x, train_y[held_idx], weights, bias)
  # Ties go to the strongest penalty (the simplest probe).
  best = max(l2_grid, key=lambda l2: (scores[l2], l2))
  full_x, probe_x = standardise(train_x, test_x)
  weights, bias = fit_softmax(full_x, train_y, num_classes, best, steps)
  return ProbeResult(
      test_top1=accuracy(probe_x, test_y, weights, bias),
      train_top1=accuracy(full_x, train_y, weights, bias), l2=best,
      validation_top1=scores, num_classes=num_classes)
