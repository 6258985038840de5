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
  def run_rows(text):  # the per-run table, not the per-row summary
    return [line for line in text.splitlines()
            if line.startswith('| random | same encoder') or
            line.startswith('| demo | cvrl_pretrain_demo')]

  rows = run_rows(first.stdout)
  assert len(rows) == 2, first.stdout
  # The summary judges the one seed: its margins are the table's.
  margins = rows[1].split(' | ')[5:7]
  assert (f'| demo | 1 | {margins[0]} / {margins[0]} | {margins[1]} / '
          f'{margins[1]} |') in first.stdout, first.stdout
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
  assert rows == run_rows(again.stdout)


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
  from cvrl.configs import small  # pylint: disable=g-import-not-at-top
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
    want = 10 if base == 'demo' else small.EPOCHS
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


def test_summary_judges_a_row_by_its_worst_seed():
  """Margins are read against the same seed's random row of the same
  encoder; one seed under the bar on either label fails the row."""
  from studies.learning_under_nuisance import run as study  # pylint: disable=g-import-not-at-top

  def result(row, seed, shape, direction):
    return dict(row=row, seed=seed, shape=shape, direction=direction)

  results = [
      result('random_difference', 0, 0.25, 0.25),
      result('random_difference', 1, 0.20, 0.30),
      result('random_difference', 2, 0.22, 0.28),
      # Clears shape +0.15 and direction +0.5 at every seed.
      result('small', 0, 0.45, 0.90), result('small', 1, 0.40, 0.85),
      result('small', 2, 0.38, 0.79),
      # Better mean, but seed 1's direction is +0.45.
      result('small_20_epochs', 0, 0.60, 0.99),
      result('small_20_epochs', 1, 0.60, 0.75),
      result('small_20_epochs', 2, 0.60, 0.99),
      # No random row at seed 3: not judged on it.
      result('small_t0.2', 3, 0.90, 0.90),
  ]
  margins = study.margins_by_row(results)
  assert set(margins) == {'small', 'small_20_epochs'}
  assert margins['small']['shape'] == pytest.approx([0.20, 0.20, 0.16])
  assert margins['small']['direction'] == pytest.approx([0.65, 0.55, 0.51])
  lines = study.summary(results).splitlines()
  rows = {line.split(' | ')[0][2:]: line for line in lines[2:]}
  assert rows['small'] == ('| small | 3 | +0.160 / +0.187 | +0.510 / +0.570 '
                           '| yes |')
  assert rows['small_20_epochs'].endswith('| +0.450 / +0.633 | no |')
