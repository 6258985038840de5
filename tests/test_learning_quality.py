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
