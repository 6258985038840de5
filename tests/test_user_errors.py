"""Errors a user can fix are one line naming what to fix: experiment names,
override keys, damaged records; and training shows its progress."""

import os
import shutil

import pytest
import tensorflow as tf

from cvrl.data import video_sources
from cvrl.tasks import train_actions
from tests.conftest import run_module


def _train(*args):
  return run_module('cvrl.tools.train', *args, check=False)


def test_a_misspelt_experiment_names_the_closest(tmp_path):
  result = _train('--experiment=cvrl_pretrain_dmeo', '--mode=train',
                  f'--model_dir={tmp_path}')
  assert result.returncode == 1
  assert ("train: error: --experiment='cvrl_pretrain_dmeo' is not a "
          'registered experiment: did you mean cvrl_pretrain_demo') in (
              result.stderr)
  assert '--list_experiments' in result.stderr
  assert 'Traceback' not in result.stderr
  listed = _train('--list_experiments')
  assert listed.returncode == 0
  names = [l.split()[0] for l in listed.stdout.splitlines() if l.strip()]
  assert 'cvrl_pretrain_demo' in names and 'cvrl_pretrain_k600' in names


def test_a_misspelt_override_key_names_the_closest(tmp_path):
  result = _train('--experiment=cvrl_pretrain_demo', '--mode=train',
                  f'--model_dir={tmp_path}',
                  '--params_override=trainer.train_step=3')
  assert result.returncode == 1
  assert ("override key 'trainer.train_step' does not exist in "
          '--experiment=cvrl_pretrain_demo: closest valid keys: '
          'trainer.train_steps') in result.stderr
  assert 'Traceback' not in result.stderr


def test_a_truncated_record_is_named_at_start(synthetic_records, tmp_path):
  data = tmp_path / 'train'
  shutil.copytree(os.path.join(synthetic_records, 'train'), data)
  damaged = sorted(data.glob('train-*.tfrecord'))[-1]
  damaged.write_bytes(damaged.read_bytes()[:-1000])
  result = _train(
      '--experiment=cvrl_pretrain_demo', '--mode=train',
      f'--model_dir={tmp_path / "run"}',
      f'--params_override=task.train_data.input_path={data}/train-*.tfrecord')
  assert result.returncode == 1
  assert f'{damaged}: truncated TFRecord' in result.stderr
  assert 'inspect_tfrecords' in result.stderr
  assert 'Traceback' not in result.stderr


def test_tf_data_loss_is_explained_with_the_file(synthetic_records,
                                                 tmp_path):
  data = tmp_path / 'train'
  shutil.copytree(os.path.join(synthetic_records, 'train'), data)
  damaged = sorted(data.glob('train-*.tfrecord'))[0]
  damaged.write_bytes(damaged.read_bytes()[:-1000])
  with pytest.raises(tf.errors.DataLossError) as error:
    for _ in tf.data.TFRecordDataset(str(damaged)):
      pass
  message = video_sources.explain_data_loss(
      error.value, [f'{data}/train-*.tfrecord'])
  assert str(damaged) in message and 'truncated' in message
  assert 'byte' in message and 'inspect_tfrecords' in message


def test_training_prints_progress_and_writes_it(tmp_path):
  step = tf.Variable(0, dtype=tf.int64)
  times = iter([0.0, 10.0, 20.0])
  lines = []
  action = train_actions.ExamplesPerSecond(
      step, 16, str(tmp_path), clock=lambda: next(times), total_steps=100,
      printer=lambda line, flush: lines.append(line))
  step.assign(25)
  action()
  step.assign(50)
  action()
  # 25 steps of 16 in 10 s; half the run left at 0.4 s a step.
  assert lines[-1] == ('progress: step 50/100 (50.0%), 40.0 examples/s, '
                       'ETA 0m20s')
  from cvrl.eval import reports  # pylint: disable=g-import-not-at-top
  scalars = reports.read_scalars(str(tmp_path))
  assert scalars['progress_percent'][50] == pytest.approx(50.0)
  assert scalars['eta_seconds'][50] == pytest.approx(20.0)


def test_progress_after_a_resume_counts_from_the_restored_step(tmp_path):
  """The action is made before Orbit restores the checkpoint (the global
  step still reads 0); resumed at step 150,000 of 200,000 at 0.3 s a step
  of 16, the first loop of 1,000 steps must say 53 examples/s and 4h05m
  left, not 2.4M examples/s and minutes."""
  step = tf.Variable(0, dtype=tf.int64)
  times = iter([0.0, 300.0])
  lines = []
  action = train_actions.ExamplesPerSecond(
      step, 16, str(tmp_path), clock=lambda: next(times),
      total_steps=200_000, start_step=150_000,
      printer=lambda line, flush: lines.append(line))
  step.assign(150_000)  # what the controller's restore does
  step.assign(151_000)
  action()
  assert lines == ['progress: step 151000/200000 (75.5%), 53.3 examples/s, '
                   'ETA 4h05m00s']
