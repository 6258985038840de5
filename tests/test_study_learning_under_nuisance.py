"""studies/learning_under_nuisance/run.py end to end at toy size: data, conversion,
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
  command = [sys.executable, 'studies/learning_under_nuisance/run.py',
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
  from studies.learning_under_nuisance import run as study  # pylint: disable=g-import-not-at-top
  rows = study.ROWS
  for name in rows:
    baseline = study.baseline_of(name)
    assert baseline in rows and baseline.startswith('random'), name
    assert study.ROWS[baseline][1] == 'demo', name
  assert study.baseline_of('demo') == 'random'
  # The registered small recipe reads residual frames: so does its baseline.
  assert study.baseline_of(study.MAIN_ROW) == 'random_difference'
  assert (study.baseline_of('difference_paper_colour_crop_0.6_res_48') ==
          'random_difference_res_48')


def test_every_row_is_a_valid_experiment_and_the_main_row_is_registered(
    tmp_path):
  """Each row's overrides apply strictly to its registered experiment (a
  misspelt key fails) and validate; the main row is cvrl_pretrain_small
  itself, with only the study's data, seeds and size changed."""
  from studies.learning_under_nuisance import run as study  # pylint: disable=g-import-not-at-top
  from cvrl import registry_imports  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  from cvrl.configs import launch  # pylint: disable=g-import-not-at-top
  import yaml  # pylint: disable=g-import-not-at-top
  patterns = {'train': '/data/train-*.tfrecord',
              'test': '/data/test-*.tfrecord'}
  built = {}
  for name, (_, base, overrides) in study.ROWS.items():
    config = study.row_config(name, 3, patterns, 960, study.STUDY_EPOCHS)
    path = tmp_path / f'{name}.yaml'
    path.write_text(yaml.safe_dump(config))
    params = launch.parse_experiment(study.experiment_of(name), [str(path)])
    params.task.validate()
    data = params.task.train_data
    assert (data.seed, params.task.init_seed, data.num_examples) == (3, 3, 960)
    factor = float((overrides or {}).get('trainer.epochs', 'x1')[1:])
    want = 10 if base == 'demo' else 20
    assert params.trainer.epochs == round(factor * want), name
    built[name] = params
  main = built[study.MAIN_ROW]
  registered = launch.parse_experiment('cvrl_pretrain_small')
  for params in (main, registered):
    params.task.train_data.override(
        {'input_path': '', 'num_examples': 0, 'seed': 0}, is_strict=True)
    params.task.validation_data.override({'input_path': ''}, is_strict=True)
    params.task.init_seed = 0
  assert main.as_dict() == registered.as_dict()
