"""benchmarks/learning_quality.py end to end at toy size: data, conversion,
pretraining, export and both probes run, and the table reads its results."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT


@pytest.mark.slow
def test_benchmark_runs_end_to_end_and_reuses_finished_runs(tmp_path):
  work = tmp_path / 'lq'
  command = [sys.executable, 'benchmarks/learning_quality.py',
             '--rows=demo', '--videos_per_cell=2', '--epochs=1',
             f'--work_dir={work}']
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  first = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True,
                         text=True, timeout=900, check=False)
  assert first.returncode == 0, first.stdout + first.stderr
  assert 'data: 48 train / 48 test videos' in first.stdout
  rows = [line for line in first.stdout.splitlines()
          if line.startswith('| random ') or line.startswith('| demo ')]
  assert len(rows) == 2, first.stdout
  with open(work / 'runs' / 'demo_seed0' / 'result.json') as f:
    result = json.load(f)
  for label in ('shape', 'direction'):
    assert 0.0 <= result[label] <= 1.0
  assert result['contrastive_loss'] > 0
  # One epoch of 48 videos at batch 16: 3 steps, all trained.
  assert result['config']['trainer']['epochs'] == 1
  again = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True,
                         text=True, timeout=300, check=False)
  assert again.returncode == 0 and 'data:' not in again.stdout
  assert rows == [line for line in again.stdout.splitlines()
                  if line.startswith('| random ') or line.startswith('| demo ')]


def test_every_row_is_read_against_random_init_of_the_same_encoder():
  from benchmarks import learning_quality  # pylint: disable=g-import-not-at-top
  rows = learning_quality.ROWS
  for name, (_, overrides) in rows.items():
    baseline = learning_quality.baseline_of(name)
    assert baseline in rows and baseline.startswith('random'), name
    # The baseline carries exactly the encoder / probe-size overrides.
    changes = {key: value for key, value in
               learning_quality.BASELINE_CHANGES.values()
               if (overrides or {}).get(key) == value}
    assert (rows[baseline][1] or {}) == changes, (name, baseline)
  assert learning_quality.baseline_of('demo') == 'random'
  assert (learning_quality.baseline_of(learning_quality.MAIN_ROW) ==
          'random_difference')


def test_every_row_is_a_valid_demo_experiment(tmp_path):
  """Each row's overrides apply strictly to cvrl_pretrain_demo (a misspelt
  key fails) and give a config that validates, with the lr and epochs the
  row's factors say; MAIN_ROW is the recipe the README describes."""
  from benchmarks import learning_quality  # pylint: disable=g-import-not-at-top
  from cvrl import registry_imports  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  from cvrl.configs import launch  # pylint: disable=g-import-not-at-top
  import yaml  # pylint: disable=g-import-not-at-top
  patterns = {'train': '/data/train-*.tfrecord',
              'test': '/data/test-*.tfrecord'}
  def lr_of(params):
    return (params.trainer.optimizer_config.learning_rate.cosine
            .initial_learning_rate)
  base_lr = lr_of(launch.parse_experiment('cvrl_pretrain_demo'))
  built = {}
  for name, (_, overrides) in learning_quality.ROWS.items():
    config = learning_quality.row_config(name, 3, patterns, 960, 10)
    path = tmp_path / f'{name}.yaml'
    path.write_text(yaml.safe_dump(config))
    params = launch.parse_experiment('cvrl_pretrain_demo', [str(path)])
    params.task.validate()
    data = params.task.train_data
    assert (data.seed, params.task.init_seed, data.num_examples) == (3, 3, 960)
    overrides = overrides or {}
    factor = float(overrides.get('lr', 'x1')[1:])
    assert abs(lr_of(params) - factor * base_lr) < 1e-9, name
    epochs = float(overrides.get('trainer.epochs', 'x1')[1:]) * 10
    assert params.trainer.epochs == round(epochs), name
    built[name] = params
  main = built[learning_quality.MAIN_ROW]
  assert main.task.model.backbone.cvrl_r3d.input_frames == 'difference'
  assert main.task.train_data.background.method == 'fame'
  assert main.task.train_data.spatial.view_2.brightness == 0.8
  assert main.task.train_data.global_batch_size == 64
