"""Linear probe of exported features: what a representation keeps.

A multinomial logistic regression on standardised features (mean and
standard deviation of the training set; a linear classifier, as MAE's
batch-normalised probe), fitted by L-BFGS with an L2 penalty. The penalty is chosen on a held-out part of the training set (a
fixed, class-stratified split), then the probe is refitted on the whole
training set with it: the test set is used once, for the reported accuracy.

Use it to check that pretraining learned what users want (motion, objects)
rather than a shortcut (background, colour), against the same encoder at
random initialisation (`cvrl.tools.probe`, features from
`cvrl.tools.export_features`).
"""

import csv
import dataclasses
from typing import Dict, List, Sequence, Tuple

import numpy as np
from scipy import optimize

from cvrl import files

DEFAULT_L2 = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)


def read_factor_labels(csv_path: str, column: str,
                       id_column: str = 'path') -> Tuple[Dict[str, int],
                                                         List[str]]:
  """({clip id: class index}, class names) of one column of a CSV.

  For labels the records do not carry (a second factor of a synthetic set,
  attributes of a user's own videos): rows are matched to exported features
  by clip id, which is the path as written in the converter's CSV. Classes
  are the column's distinct values, sorted (numerically if all are
  integers), so every split maps a name to the same index.
  """
  with files.open_file(csv_path) as f:
    reader = csv.DictReader(f)
    fields = reader.fieldnames or []
    for name in (id_column, column):
      if name not in fields:
        raise ValueError(f'{csv_path}: no column {name!r} (has {fields})')
    values = {}
    for line, row in enumerate(reader, start=2):
      clip_id, value = row[id_column].strip(), (row[column] or '').strip()
      if not value:
        raise ValueError(f'{csv_path}:{line}: empty {column!r} for {clip_id}')
      if values.setdefault(clip_id, value) != value:
        raise ValueError(f'{csv_path}:{line}: clip {clip_id!r} listed twice '
                         f'with different {column!r}')
  names = sorted(set(values.values()))
  if all(n.lstrip('-').isdigit() for n in names):
    names = sorted(names, key=int)
  index = {name: i for i, name in enumerate(names)}
  return {k: index[v] for k, v in values.items()}, names


def labels_for_ids(ids: Sequence[str], labels: Dict[str, int],
                   source: str) -> np.ndarray:
  """int [N] labels of exported clip ids; every id must have one (a video
  without a label is an error naming it, never silently dropped)."""
  missing = [i for i in ids if i not in labels]
  if missing:
    raise ValueError(f'{source}: no label for {len(missing)} of {len(ids)} '
                     f'exported clips, e.g. {missing[:3]}')
  return np.array([labels[i] for i in ids], int)


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
                l2: float, steps: int = 300) -> Tuple[np.ndarray, np.ndarray]:
  """(weights [D, C], bias [C]) minimising mean cross-entropy + l2/2 |W|^2.

  L-BFGS (scipy) from zeros, at most `steps` iterations: deterministic, and
  the problem is convex, so the result does not depend on a start. Not plain
  gradient descent: features of a small encoder are strongly correlated
  (one eigenvalue of X^T X / n near D after standardising), so any fixed
  step that is stable leaves the other directions unfitted.
  """
  n, dim = features.shape
  onehot = np.eye(num_classes)[labels]

  def loss_and_grad(theta):
    weights = theta[:dim * num_classes].reshape(dim, num_classes)
    bias = theta[dim * num_classes:]
    logits = features @ weights + bias
    logits -= logits.max(axis=1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    loss = -np.sum(onehot * log_probs) / n + 0.5 * l2 * np.sum(weights ** 2)
    error = (np.exp(log_probs) - onehot) / n
    grad = np.concatenate([(features.T @ error + l2 * weights).ravel(),
                           error.sum(axis=0)])
    return loss, grad

  theta = optimize.minimize(
      loss_and_grad, np.zeros(dim * num_classes + num_classes), jac=True,
      method='L-BFGS-B',
      options=dict(maxiter=steps, gtol=1e-6, ftol=1e-12)).x
  return (theta[:dim * num_classes].reshape(dim, num_classes),
          theta[dim * num_classes:])


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
                 holdout: float = 0.2, steps: int = 300,
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
