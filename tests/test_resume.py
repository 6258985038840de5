"""Which checkpoint a rerun resumes from, on real checkpoint files: damage
anywhere in a data file is found (TensorFlow's per-tensor checksums) and
set aside; a transient read error is retried, never taken for damage; only
the chief changes the model dir."""

import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from cvrl.tasks import resume


def _checkpoints(model_dir, steps=3):
  """Checkpoints ckpt-1..ckpt-`steps` as Model Garden names them, each
  with a global step and 4 MB of weights."""
  step = tf.Variable(0, dtype=tf.int64)
  weights = tf.Variable(np.random.default_rng(0).normal(
      size=(1024, 1024)).astype(np.float32))
  checkpoint = tf.train.Checkpoint(global_step=step, weights=weights)
  manager = tf.train.CheckpointManager(checkpoint, str(model_dir),
                                       max_to_keep=5, step_counter=step)
  for k in range(1, steps + 1):
    step.assign(k)
    weights.assign_add(tf.ones_like(weights))
    manager.save(checkpoint_number=k)
  return str(model_dir)


def _flip_middle(prefix, count=64):
  data = prefix + '.data-00000-of-00001'
  size = os.path.getsize(data)
  with open(data, 'r+b') as f:
    f.seek(size // 2)
    chunk = f.read(count)
    f.seek(size // 2)
    f.write(bytes(b ^ 0xFF for b in chunk))


def _state(model_dir):
  with open(os.path.join(model_dir, 'checkpoint')) as f:
    return f.read()


def test_bytes_flipped_mid_file_are_found_and_set_aside(tmp_path):
  model_dir = _checkpoints(tmp_path)
  newest = os.path.join(model_dir, 'ckpt-3')
  _flip_middle(newest)
  prefix, step, lines = resume.select(model_dir, sleep=pytest.fail)
  assert (prefix, step) == (os.path.join(model_dir, 'ckpt-2'), 2)
  assert lines[0].startswith(f'resume: {newest} cannot be read (')
  assert 'checksum' in lines[0].lower() or 'crc' in lines[0].lower()
  assert not glob.glob(newest + '.index') and glob.glob(
      newest + '.index' + resume.DAMAGED_SUFFIX)
  assert tf.train.latest_checkpoint(model_dir) == prefix


def test_a_worker_that_is_not_the_chief_chooses_alike_and_changes_nothing(
    tmp_path):
  model_dir = _checkpoints(tmp_path)
  _flip_middle(os.path.join(model_dir, 'ckpt-3'))
  state = _state(model_dir)
  prefix, step, _ = resume.select(model_dir, is_chief=False,
                                  sleep=pytest.fail)
  assert step == 2 and prefix.endswith('ckpt-2')
  assert _state(model_dir) == state
  assert not glob.glob(os.path.join(model_dir, '*' + resume.DAMAGED_SUFFIX))


def test_a_transient_error_is_retried_not_taken_for_damage(tmp_path,
                                                           monkeypatch):
  model_dir = _checkpoints(tmp_path)
  state = _state(model_dir)
  real, failures, slept = resume._read_all, [], []  # pylint: disable=protected-access

  def flaky(prefix):
    if not failures:
      failures.append(prefix)
      raise tf.errors.UnavailableError(None, None, 'connection reset')
    return real(prefix)
  monkeypatch.setattr(resume, '_read_all', flaky)
  prefix, step, lines = resume.select(model_dir, sleep=slept.append)
  assert (step, lines) == (3, []) and prefix.endswith('ckpt-3')
  assert slept == [resume.RETRY_DELAYS_S[0]]
  assert _state(model_dir) == state


def test_a_read_that_keeps_failing_stops_with_everything_intact(
    tmp_path, monkeypatch):
  model_dir = _checkpoints(tmp_path)
  state = _state(model_dir)
  files = sorted(os.listdir(model_dir))

  def down(prefix):
    raise tf.errors.DeadlineExceededError(None, None, f'{prefix}: timeout')
  monkeypatch.setattr(resume, '_read_all', down)
  slept = []
  with pytest.raises(resume.TransientReadError,
                     match='ckpt-3: reading it failed 4 times with '
                     'DeadlineExceededError.*nothing was changed'):
    resume.select(model_dir, sleep=slept.append)
  assert slept == list(resume.RETRY_DELAYS_S)
  assert _state(model_dir) == state and sorted(os.listdir(model_dir)) == files
