"""`python -m cvrl.tools.train` end to end: TensorBoard, resuming, exact replay."""

import glob
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

from cvrl.eval import reports
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def _command(records, model_dir, steps, extra=''):
  override = ','.join([
      f'task.train_data.input_path={records}/train/train-*.tfrecord',
      f'task.validation_data.input_path={records}/val/val-*.tfrecord',
      'task.train_data.global_batch_size=4',
      'task.validation_data.global_batch_size=4',
      # Steps of ~0.5 s, so that the test can kill a run between two steps.
      'task.train_data.num_frames=8', 'task.validation_data.num_frames=8',
      'task.model.backbone.cvrl_r3d.width_multiplier=0.25',
      'task.model.projection_head.hidden_dim=32',
      f'trainer.train_steps={steps}', 'trainer.steps_per_loop=1',
      'trainer.summary_interval=1', 'trainer.checkpoint_interval=3',
      'trainer.validation_interval=1000',
  ] + ([extra] if extra else []))
  return [sys.executable, '-m', 'cvrl.tools.train', '--experiment=cvrl_pretrain_demo',
          '--mode=train', f'--model_dir={model_dir}',
          f'--params_override={override}']


def _run(command, check=True):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=REPO_ROOT)
  result = subprocess.run(command, cwd=REPO_ROOT, env=env, timeout=600,
                          capture_output=True, text=True, check=False)
  if check and result.returncode:
    raise AssertionError(result.stdout[-3000:] + result.stderr[-3000:])
  return result


def _image_tags(log_dir):
  tags = set()
  for path in glob.glob(os.path.join(log_dir, 'events.*')):
    acc = event_accumulator.EventAccumulator(path)
    acc.Reload()
    tags |= {t for t in acc.Tags()['tensors']
             if acc.summary_metadata[t].plugin_data.plugin_name == 'images'}
  return tags


def test_tensorboard_tags_and_resume_replays_exactly(synthetic_records, tmp_path):
  clean = tmp_path / 'clean'
  _run(_command(synthetic_records, clean, 6, 'task.image_summary_clips=2'))
  scalars = reports.read_scalars(str(clean / 'train'))
  for tag in ('training_loss', 'contrastive_loss', 'contrastive_accuracy',
              'entropy', 'regularization_loss', 'learning_rate',
              'examples_per_second', 'steps_per_second'):
    assert tag in scalars, f'{tag} missing from {sorted(scalars)}'
  assert sorted(scalars['contrastive_loss']) == [1, 2, 3, 4, 5, 6]
  assert 'augmented_views' in _image_tags(str(clean / 'train'))
  summary = reports.summarize(str(clean))
  assert 'chance loss 1.946' in summary  # batch 4: ln(2 * 4 - 1)
  assert 'contrastive_accuracy' in summary and 'step     6' in summary

  # Same command, killed after the step-3 checkpoint, then run again.
  killed = tmp_path / 'killed'
  command = _command(synthetic_records, killed, 6, 'task.image_summary_clips=2')
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=REPO_ROOT)
  proc = subprocess.Popen(command, cwd=REPO_ROOT, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 300
  state = killed / 'checkpoint'
  while time.time() < deadline and proc.poll() is None:
    if state.exists() and 'ckpt-' in state.read_text():
      break
    time.sleep(0.005)
  assert proc.poll() is None, 'finished before it could be killed'
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  saved = int(re.search(r'model_checkpoint_path: "ckpt-(\d+)"',
                        state.read_text()).group(1))
  assert saved < 6 and not glob.glob(str(killed / 'ckpt-6.index'))
  result = _run(command)
  assert f'resuming at step {saved}' in result.stderr
  resumed = reports.read_scalars(str(killed / 'train'))
  for step in range(saved + 1, 7):
    np.testing.assert_allclose(resumed['contrastive_loss'][step],
                               scalars['contrastive_loss'][step], rtol=1e-4)
    np.testing.assert_allclose(resumed['training_loss'][step],
                               scalars['training_loss'][step], rtol=1e-4)
