r"""The linear probe's fit: ours (SciPy L-BFGS on the exact objective) against
scikit-learn's LogisticRegression, same protocol, same features.

  .venv/bin/python benchmarks/probe_fit.py \
      [--train=demo_output/features/cvrl_train.npz \
       --test=demo_output/features/cvrl_val.npz] [--repeats=3]

Both fit the multinomial logistic regression of `cvrl.eval.probe` on
standardised features: mean cross-entropy + l2/2 |W|^2, bias not penalised
(scikit-learn's C = 1 / (l2 N) is the same objective up to a factor), the
penalty chosen on the same class-stratified 20% of train from the same grid,
then refitted on all of train. Printed per feature file pair and fitter:
the best of --repeats wall times of the whole probe, the test top-1, the
chosen penalty, and the objective each reaches at that penalty (a lower
value is a better optimum of the same problem). Without --train/--test it
also runs on synthetic Gaussian classes of the demo's shape (560 x 512).
"""

import argparse
import os
import sys
import time
import warnings

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

# pylint: disable=g-import-not-at-top,wrong-import-position
from cvrl.eval import probe


NOT_CONVERGED = []


def fit_sklearn(features, labels, num_classes, l2, steps=300):
  """probe.fit_softmax's problem solved by scikit-learn (lbfgs), with the
  same iteration budget; fits that stop at it are counted."""
  from sklearn.exceptions import ConvergenceWarning
  from sklearn.linear_model import LogisticRegression
  model = LogisticRegression(C=1.0 / (l2 * len(labels)), max_iter=steps,
                             tol=1e-6)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always', ConvergenceWarning)
    model.fit(features, labels)
  NOT_CONVERGED.append(any(issubclass(w.category, ConvergenceWarning)
                           for w in caught))
  weights = np.zeros((features.shape[1], num_classes))
  bias = np.full(num_classes, -1e9)  # a class absent from the fit set
  weights[:, model.classes_] = model.coef_.T
  bias[model.classes_] = model.intercept_
  return weights, bias


def objective(features, labels, weights, bias, l2):
  logits = features @ weights + bias
  logits -= logits.max(axis=1, keepdims=True)
  log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
  return (-log_probs[np.arange(len(labels)), labels].mean() +
          0.5 * l2 * np.sum(weights ** 2))


def run(name, train_x, train_y, test_x, test_y, repeats):
  fitters = {'ours (scipy L-BFGS)': probe.fit_softmax,
             'scikit-learn LogisticRegression': fit_sklearn}
  print(f'\n{name}: train {train_x.shape}, test {test_x.shape}, '
        f'{int(max(train_y.max(), test_y.max())) + 1} classes')
  print(f"{'fitter':34s} {'seconds':>8s} {'test top-1':>10s} {'l2':>7s} "
        f"{'objective':>10s}  fits at the iteration limit")
  for label, fit in fitters.items():
    times = []
    NOT_CONVERGED.clear()
    for _ in range(repeats):
      original = probe.fit_softmax
      probe.fit_softmax = fit  # the probe's protocol, this fitter
      try:
        start = time.perf_counter()
        result = probe.linear_probe(train_x, train_y, test_x, test_y)
        times.append(time.perf_counter() - start)
      finally:
        probe.fit_softmax = original
    full_x = probe.standardise(train_x.mean(axis=1) if train_x.ndim == 3
                               else train_x)[0]
    weights, bias = fit(full_x, train_y, result.num_classes, result.l2)
    value = objective(full_x, train_y, weights, bias, result.l2)
    limit = (f'{sum(NOT_CONVERGED)} of {len(NOT_CONVERGED)}'
             if fit is fit_sklearn else 'n/a')
    print(f'{label:34s} {min(times):8.2f} {result.test_top1 * 100:10.2f} '
          f'{result.l2:7.0e} {value:10.6f}  {limit}', flush=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--train', action='append', default=[])
  parser.add_argument('--test', action='append', default=[])
  parser.add_argument('--repeats', type=int, default=3)
  args = parser.parse_args()
  if len(args.train) != len(args.test):
    parser.error('--train and --test go in pairs')
  for train, test in zip(args.train, args.test):
    with open(train, 'rb') as f:
      a = dict(np.load(f))
    with open(test, 'rb') as f:
      b = dict(np.load(f))
    run(f'{train} -> {test}', a['features'].astype(np.float64), a['labels'],
        b['features'].astype(np.float64), b['labels'], args.repeats)
  if not args.train:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(8, 512))
    def draw(n):
      y = rng.integers(0, 8, n)
      return centres[y] * 0.15 + rng.normal(size=(n, 512)), y
    (train_x, train_y), (test_x, test_y) = draw(560), draw(240)
    run('synthetic Gaussian classes', train_x, train_y, test_x, test_y,
        args.repeats)
  return 0


if __name__ == '__main__':
  sys.exit(main())
