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
