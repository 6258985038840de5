"""Linear probe: finds what is linearly there, never looks at test to tune."""

import numpy as np
import pytest

from cvrl.eval import probe
from tests.conftest import run_module


def _blobs(n, classes=4, dim=16, signal=8.0, seed=0):
  """Classes separated along the first 2 dims; the rest is noise."""
  rng = np.random.default_rng(seed)
  labels = np.arange(n) % classes
  # The same class centres for every sample drawn (train and test).
  centres = np.random.default_rng(100).normal(size=(classes, 2)) * signal
  x = rng.normal(size=(n, dim))
  x[:, :2] += centres[labels]
  return x, labels


def test_separable_classes_are_found_and_random_labels_are_not():
  train_x, train_y = _blobs(400)
  test_x, test_y = _blobs(200, seed=1)
  result = probe.linear_probe(train_x, train_y, test_x, test_y)
  assert result.test_top1 > 0.85 and result.num_classes == 4
  shuffled = np.random.default_rng(2).permutation(train_y)
  chance = probe.linear_probe(train_x, shuffled, test_x, test_y)
  assert chance.test_top1 < 0.4  # chance is 0.25


def test_the_penalty_is_chosen_without_the_test_set():
  train_x, train_y = _blobs(300)
  test_x, test_y = _blobs(100, seed=3)
  a = probe.linear_probe(train_x, train_y, test_x, test_y)
  b = probe.linear_probe(train_x, train_y, test_x,
                         np.random.default_rng(4).permutation(test_y))
  assert a.l2 == b.l2 and a.validation_top1 == b.validation_top1
  assert a.train_top1 == b.train_top1


def test_views_are_averaged_and_scale_does_not_matter():
  train_x, train_y = _blobs(200)
  test_x, test_y = _blobs(80, seed=5)
  views = np.stack([train_x - 1.0, train_x + 1.0], axis=1)  # mean = train_x
  a = probe.linear_probe(train_x, train_y, test_x, test_y)
  b = probe.linear_probe(views, train_y, test_x, test_y)
  assert a.test_top1 == b.test_top1 and a.l2 == b.l2
  scale = np.geomspace(1e-3, 1e3, train_x.shape[1])  # standardised away
  c = probe.linear_probe(train_x * scale, train_y, test_x * scale, test_y)
  assert abs(c.test_top1 - a.test_top1) < 1e-9


def test_fit_reaches_the_optimum():
  x, y = _blobs(120, classes=3, dim=5)
  (x,) = probe.standardise(x)
  weights, bias = probe.fit_softmax(x, y, 3, l2=0.1, steps=3000)
  logits = x @ weights + bias
  p = np.exp(logits - logits.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  grad = x.T @ (p - np.eye(3)[y]) / len(y) + 0.1 * weights
  assert np.abs(grad).max() < 1e-6


def test_bad_labels_are_named():
  x, y = _blobs(20)
  with pytest.raises(ValueError, match='labels must be >= 0'):
    probe.linear_probe(x, np.where(y == 0, -1, y), x, y)


def test_probe_command(tmp_path):
  train_x, train_y = _blobs(200)
  test_x, test_y = _blobs(80, seed=6)
  np.savez(tmp_path / 'train.npz', features=train_x, labels=train_y,
           motion=train_y % 2)
  np.savez(tmp_path / 'test.npz', features=test_x, labels=test_y,
           motion=test_y % 2)
  out = run_module('cvrl.tools.probe', f'--train={tmp_path}/train.npz',
                   f'--test={tmp_path}/test.npz').stdout
  assert 'linear probe (4 classes, chance 25.00): test top-1' in out
  out = run_module('cvrl.tools.probe', f'--train={tmp_path}/train.npz',
                   f'--test={tmp_path}/test.npz', '--label_key=motion').stdout
  assert '(2 classes, chance 50.00)' in out
  bad = run_module('cvrl.tools.probe', f'--train={tmp_path}/train.npz',
                   f'--test={tmp_path}/test.npz', '--label_key=object',
                   check=False)
  assert bad.returncode == 1 and 'train.npz' in bad.stderr and (
      "no array 'object'" in bad.stderr)


def test_labels_from_a_csv_by_clip_id(tmp_path):
  """A second factor comes from a CSV joined by clip id; a clip without a
  label, a missing column or a contradictory row is an error naming it."""
  path = tmp_path / 'factors.csv'
  path.write_text('path,split,shape\nv/a.mp4,train,ring\nv/b.mp4,test,cross\n'
                  'v/c.mp4,train,ring\n')
  labels, names = probe.read_factor_labels(str(path), 'shape')
  assert names == ['cross', 'ring']
  assert labels == {'v/a.mp4': 1, 'v/b.mp4': 0, 'v/c.mp4': 1}
  assert probe.labels_for_ids(['v/c.mp4', 'v/b.mp4'], labels,
                              'x').tolist() == [1, 0]
  with pytest.raises(ValueError, match=r"x: no label for 1 of 2 .*v/d\.mp4"):
    probe.labels_for_ids(['v/a.mp4', 'v/d.mp4'], labels, 'x')
  with pytest.raises(ValueError, match="no column 'colour'"):
    probe.read_factor_labels(str(path), 'colour')
  numeric = tmp_path / 'numeric.csv'
  numeric.write_text('path,n\na,10\nb,9\nc,-1\n')
  assert probe.read_factor_labels(str(numeric), 'n')[1] == ['-1', '9', '10']
  bad = tmp_path / 'bad.csv'
  bad.write_text('path,shape\na,ring\na,cross\nb,\n')
  with pytest.raises(ValueError, match=r"bad.csv:3: clip 'a' listed twice"):
    probe.read_factor_labels(str(bad), 'shape')


def test_probe_command_with_csv_labels(tmp_path):
  train_x, train_y = _blobs(200)
  test_x, test_y = _blobs(80, seed=6)
  ids = [f'v{i}' for i in range(280)]
  # The CSV's label is the blob class; the .npz labels are noise.
  rows = ''.join(f'{i},c{y}\n' for i, y in zip(ids, np.concatenate(
      [train_y, test_y])))
  (tmp_path / 'f.csv').write_text('path,blob\n' + rows)
  noise = np.zeros(280, int)
  np.savez(tmp_path / 'train.npz', features=train_x, labels=noise[:200],
           ids=np.array(ids[:200]))
  np.savez(tmp_path / 'test.npz', features=test_x, labels=noise[200:],
           ids=np.array(ids[200:]))
  out = run_module('cvrl.tools.probe', f'--train={tmp_path}/train.npz',
                   f'--test={tmp_path}/test.npz',
                   f'--labels_csv={tmp_path}/f.csv',
                   '--label_column=blob').stdout
  top1 = float(out.split('test top-1 ')[1].split(',')[0])
  assert '4 classes' in out and top1 > 85
  (tmp_path / 'g.csv').write_text('path,blob\n' + rows.split('\n', 1)[1])
  missing = run_module('cvrl.tools.probe', f'--train={tmp_path}/train.npz',
                       f'--test={tmp_path}/test.npz',
                       f'--labels_csv={tmp_path}/g.csv', '--label_column=blob',
                       check=False)
  assert missing.returncode == 1 and "e.g. ['v0']" in missing.stderr
