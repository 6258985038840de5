"""`python -m cvrl.tools.train` end to end: TensorBoard, resuming, exact replay."""

import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
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
  # The last accuracy against its chance, 1 / (2N - 1) = 1 / 7.
  last = scalars['contrastive_accuracy'][6]
  assert f'step     6: {last:.3f} ({last * 7:.1f}x chance)' in summary

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


def _backbone_weights(prefix):
  reader = tf.train.load_checkpoint(prefix)
  return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
          if k.startswith('backbone/') and '.OPTIMIZER_SLOT' not in k}


def _assert_same_weights(a, b):
  wa, wb = _backbone_weights(a), _backbone_weights(b)
  assert wa.keys() == wb.keys() and len(wa) > 10
  for key, value in wa.items():
    np.testing.assert_allclose(wb[key], value, rtol=1e-4, atol=1e-6,
                               err_msg=key)


@pytest.fixture(scope='module')
def uninterrupted(synthetic_records, tmp_path_factory):
  """Six steps, no interruption: the reference weights."""
  clean = tmp_path_factory.mktemp('uninterrupted')
  _run(_command(synthetic_records, clean, 6))
  return clean


def test_sigterm_saves_the_step_reached_and_the_rerun_ends_as_if_uninterrupted(
    synthetic_records, uninterrupted, tmp_path):
  """A preemption between interval checkpoints (every 100 steps here),
  signalled twice as a launcher that signals the process group does: the
  job finishes its step, saves it, says so and exits 143 (restartable, not
  0) well within the 30 s a cloud VM gives; the same command then resumes
  there, and the final weights are those of the run that was never
  stopped."""
  model_dir = tmp_path / 'preempted'
  command = _command(synthetic_records, model_dir, 6,
                     'trainer.checkpoint_interval=100')
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=REPO_ROOT)
  proc = subprocess.Popen(command, cwd=REPO_ROOT, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  for line in proc.stdout:  # progress lines, one a step
    if line.startswith('progress: step 2/6'):
      break
  sent = time.time()
  proc.send_signal(signal.SIGTERM)
  time.sleep(0.2)  # two deliveries, not one coalesced pending signal
  proc.send_signal(signal.SIGTERM)
  out, err = proc.communicate(timeout=60)
  took = time.time() - sent
  assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
  assert took < 30, took
  stopped = re.search(r'train: stopped by SIGTERM at step (\d+); saved (\S+)'
                      r'\. Run the same command to resume', err)
  assert stopped, err[-3000:]
  step = int(stopped.group(1))
  assert 2 <= step < 6
  assert os.path.exists(f'{model_dir}/ckpt-{step}.index')
  assert not glob.glob(f'{model_dir}/ckpt-6.*')
  assert 'SIGTERM received: finishing the current step' in err
  # The second signal is ignored (tests/test_preemption.py checks the
  # handler), never an exit without the save asserted above.
  result = _run(command)
  assert f'resuming at step {step}' in result.stderr
  _assert_same_weights(f'{uninterrupted}/ckpt-6', f'{model_dir}/ckpt-6')


def test_a_damaged_last_checkpoint_is_named_and_an_older_one_resumed(
    synthetic_records, uninterrupted, tmp_path):
  """ckpt-6 cut short (a write interrupted): the rerun names it, resumes
  from the interval checkpoint before it saying which steps are trained
  again, and ends with the uninterrupted weights; with every checkpoint
  damaged it stops in one line."""
  model_dir = tmp_path / 'damaged'
  shutil.copytree(uninterrupted, model_dir)
  older = max(int(re.search(r'ckpt-(\d+)\.index$', p).group(1))
              for p in glob.glob(f'{model_dir}/ckpt-*.index')
              if not p.endswith('ckpt-6.index'))
  data = model_dir / 'ckpt-6.data-00000-of-00001'
  data.write_bytes(data.read_bytes()[:data.stat().st_size // 2])
  result = _run(_command(synthetic_records, model_dir, 6))
  assert f'resume: {model_dir}/ckpt-6 cannot be read' in result.stderr
  assert (f'resume: WARNING: resuming from {model_dir}/ckpt-{older}, the '
          f'newest readable checkpoint, at step {older} (steps {older + 1}-6 '
          'are trained again)') in result.stderr
  assert f'resuming at step {older}' in result.stderr
  _assert_same_weights(f'{uninterrupted}/ckpt-6', f'{model_dir}/ckpt-6')
  for prefix in glob.glob(f'{model_dir}/ckpt-*.index'):
    data = prefix.replace('.index', '.data-00000-of-00001')
    with open(data, 'r+b') as f:
      f.truncate(100)
  failed = _run(_command(synthetic_records, model_dir, 7), check=False)
  assert failed.returncode == 1
  assert 'train: error: --model_dir: ' in failed.stderr
  assert 'no checkpoint can be read' in failed.stderr
  assert 'Traceback' not in failed.stderr


def test_bytes_flipped_inside_the_last_checkpoint_are_not_blamed_on_the_data(
    synthetic_records, uninterrupted, tmp_path):
  """64 bytes flipped in the middle of ckpt-6's data file, in a train-only
  run (no validation data is read): the checksum names ckpt-6 before any
  restore, it is set aside, the interval checkpoint before it is resumed,
  and nothing is said of the input records."""
  model_dir = tmp_path / 'flipped'
  shutil.copytree(uninterrupted, model_dir)
  data = model_dir / 'ckpt-6.data-00000-of-00001'
  raw = bytearray(data.read_bytes())
  middle = len(raw) // 2
  raw[middle:middle + 64] = bytes(b ^ 0xFF for b in raw[middle:middle + 64])
  data.write_bytes(bytes(raw))
  result = _run(_command(synthetic_records, model_dir, 6))
  assert f'resume: {model_dir}/ckpt-6 cannot be read' in result.stderr
  assert 'Checksum does not match' in result.stderr
  assert (model_dir / 'ckpt-6.index.damaged').exists()
  assert 'train: error' not in result.stderr  # it finished (_run checks)
  _assert_same_weights(f'{uninterrupted}/ckpt-6', f'{model_dir}/ckpt-6')
