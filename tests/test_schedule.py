"""Schedules derived from epochs when the job starts (cvrl.configs.schedule)."""

import numpy as np
import pytest
import yaml

from official.core import exp_factory
from official.modeling import optimization

from cvrl import registry_imports  # pylint: disable=unused-import  # noqa: F401
from cvrl.configs import base
from cvrl.configs import launch
from cvrl.configs import precision
from cvrl.configs import schedule
from cvrl.configs import video_data
from tests.conftest import REPO_ROOT

EXPERIMENTS = sorted(n for n in exp_factory._REGISTERED_CONFIGS  # pylint: disable=protected-access
                     if n.startswith('cvrl_'))
CPU = precision.Devices()


def _learning_rate(params):
  factory = optimization.OptimizerFactory(params.trainer.optimizer_config)
  return factory.build_learning_rate()


def _prepared(name, overrides=None):
  params = exp_factory.get_exp_config(name)
  if overrides:
    params.override(overrides, is_strict=True)
  head = getattr(params.task.model, 'head', None)
  if getattr(head, 'num_classes', None) == 0:
    # 'From the records' label map' (the small-data experiments); these
    # tests have no records, and the schedule does not depend on it.
    head.num_classes = 8
  launch.prepare(params, CPU)
  return params


def _check_recipe(params, epochs, warmup_epochs, examples):
  batch = params.task.train_data.global_batch_size
  steps = params.trainer.train_steps
  per_epoch = examples / batch
  # The recipe's epochs, to within one step (no flooring of steps/epoch).
  assert abs(steps - epochs * per_epoch) <= 0.5 + 1e-9, (steps, epochs,
                                                         per_epoch)
  lr = _learning_rate(params)
  if params.trainer.optimizer_config.learning_rate.type == 'stepwise':
    _check_steps(params, lr, per_epoch)
    return
  base = params.trainer.optimizer_config.learning_rate.cosine
  warmup = int(round(warmup_epochs * per_epoch))
  warmup = min(warmup, steps // 2)
  # The half-cosine runs from the end of warmup to exactly the last step:
  # 0 there, and not before (float32 rounds the last few steps of a long
  # run to 0, so "before" is checked 0.1% of the run earlier).
  assert base.offset == warmup and base.offset + base.decay_steps == steps
  assert float(lr(steps)) == 0.0
  if steps > 1:
    assert float(lr(steps - max(1, steps // 1000))) > 0.0
  if warmup:
    np.testing.assert_allclose(float(lr(warmup)), base.initial_learning_rate,
                               rtol=1e-6)
    np.testing.assert_allclose(float(lr(warmup // 2)),
                               base.initial_learning_rate * (warmup // 2)
                               / warmup, rtol=1e-5)
  else:
    np.testing.assert_allclose(float(lr(0)), base.initial_learning_rate,
                               rtol=1e-6)
  trainer = params.trainer
  assert trainer.summary_interval % trainer.steps_per_loop == 0
  for interval in (trainer.checkpoint_interval, trainer.validation_interval):
    # A whole number of loops, or the run's end: never past it.
    assert 0 < interval <= steps
    assert interval % trainer.steps_per_loop == 0 or interval == steps


def _check_steps(params, lr, per_epoch):
  """Detection's 1x schedule: each value until its epoch's step."""
  stepwise = params.trainer.optimizer_config.learning_rate.stepwise
  epochs = params.trainer.decay_epochs
  assert stepwise.boundaries == [round(e * per_epoch) for e in epochs]
  for boundary, before, after in zip(stepwise.boundaries, stepwise.values,
                                     stepwise.values[1:]):
    np.testing.assert_allclose(float(lr(boundary)), before, rtol=1e-6)
    np.testing.assert_allclose(float(lr(boundary + 1)), after, rtol=1e-6)


@pytest.mark.parametrize('name', EXPERIMENTS)
@pytest.mark.parametrize('examples', [1_237, 240_011])
def test_every_experiment_rescales_with_num_examples(name, examples):
  recipe = exp_factory.get_exp_config(name).trainer
  assert recipe.train_steps == 0 and recipe.epochs > 0, (
      f'{name}: recipes give epochs and leave train_steps to the job')
  params = _prepared(name, {'task': {'train_data': {'num_examples':
                                                        examples}}})
  _check_recipe(params, recipe.epochs, recipe.warmup_epochs, examples)


def test_the_papers_step_counts():
  # Figure 4: 46k steps = 200 K400 epochs, 284k = 800 K600 epochs.
  assert _prepared('cvrl_pretrain_k400_200ep').trainer.train_steps == 46_000
  assert _prepared('cvrl_pretrain_k600').trainer.train_steps == 284_000
  # 5 epochs of warmup at 230 steps an epoch.
  params = _prepared('cvrl_pretrain_k400')
  assert params.trainer.optimizer_config.warmup.linear.warmup_steps == 1_150


def test_one_percent_subset_trains_100_epochs_not_87():
  params = _prepared('cvrl_semi_supervised_k400_1pct')
  examples = params.task.train_data.num_examples
  assert examples == 2_355
  assert params.trainer.train_steps == 230  # floor would give 2 x 100 = 200
  assert params.trainer.optimizer_config.warmup.type is None  # no warmup
  # The count make_subset printed for the user's own subset:
  params = _prepared('cvrl_semi_supervised_k400_1pct',
                     {'task': {'train_data': {'num_examples': 2_401}}})
  _check_recipe(params, 100, 0, 2_401)


def test_ucf101_split3_yaml_sizes_the_decay_to_its_own_length():
  with open(f'{REPO_ROOT}/experiments/ucf101_split3.yaml') as f:
    override = yaml.safe_load(f)
  assert 'train_steps' not in override.get('trainer', {})
  for name in ('cvrl_ucf101_finetune', 'cvrl_ucf101_linear_eval'):
    params = exp_factory.get_exp_config(name)
    params.override(override, is_strict=True)
    launch.prepare(params, CPU)
    assert params.task.train_data.num_examples == 9_624
    assert params.trainer.train_steps == round(50 * 9_624 / 128)  # 3,759
    _check_recipe(params, 50, 5, 9_624)


def test_explicit_train_steps_win_and_size_the_decay():
  params = _prepared('cvrl_pretrain_k400',
                     {'trainer': {'train_steps': 777}})
  assert params.trainer.train_steps == 777
  lr = _learning_rate(params)
  assert float(lr(777)) == 0.0 and float(lr(776)) > 0.0
  # Warmup keeps the recipe's share of the run: 5 of 800 epochs of 777
  # steps is 5 steps (it was 776: the whole run but one step).
  assert params.trainer.optimizer_config.warmup.linear.warmup_steps == 5


@pytest.mark.parametrize('steps,epochs,warmup_epochs,want', [
    (1_000, 800, 5, 6),      # the paper's share of a 1,000-step smoke test
    (1_000, 10, 5, 500),     # half the run: the cap
    (1_000, 10, 8, 500),     # more than half asked: still half
    (3, 30, 2, 0),           # rounds to 0: no warmup
    (101, 2, 2, 50),         # all warmup asked: half, rounded down
])
def test_warmup_scales_with_explicit_train_steps(steps, epochs, warmup_epochs,
                                                 want):
  params = _prepared('cvrl_pretrain_k400', {'trainer': {
      'train_steps': steps, 'epochs': epochs,
      'warmup_epochs': warmup_epochs}})
  warmup = params.trainer.optimizer_config.warmup
  got = warmup.linear.warmup_steps if warmup.type else 0
  assert got == want
  lr = _learning_rate(params)
  peak = params.trainer.optimizer_config.learning_rate.cosine.initial_learning_rate
  # The peak comes at the end of warmup, and the decay then takes the rest.
  np.testing.assert_allclose(float(lr(want)), peak, rtol=1e-6)
  assert float(lr(steps)) == 0.0


def test_first_evaluation_comes_during_training():
  # AVA's 1x schedule on a copy 0.6% smaller than the recipe's: one epoch
  # of steps no longer rounds to whole loops of 500 past the end.
  params = _prepared('cvrl_ava_detection', {'task': {'train_data': {
      'num_examples': 210_000}}})
  trainer = params.trainer
  assert trainer.validation_interval < trainer.train_steps
  # Every recipe, at sizes that round up past the end.
  for name in EXPERIMENTS:
    for examples in (1_237, 5_001, 210_634):
      trainer = _prepared(name, {'task': {'train_data': {
          'num_examples': examples}}}).trainer
      assert trainer.validation_interval <= trainer.train_steps, name
      assert trainer.checkpoint_interval <= trainer.train_steps, name


def test_intervals_in_epochs_follow_the_dataset():
  params = _prepared('cvrl_linear_eval_k400',
                     {'task': {'train_data': {'num_examples': 102_400}}})
  # 100 steps an epoch: checkpoints every 5 epochs, validation every 10.
  assert params.trainer.checkpoint_interval == 500
  assert params.trainer.validation_interval == 1_000
  assert params.trainer.steps_per_loop == 500


def test_the_derived_numbers_are_described_for_the_log():
  params = exp_factory.get_exp_config('cvrl_pretrain_k400_200ep')
  lines = launch.prepare(params, CPU)
  text = '\n'.join(lines)
  assert '46000 train steps from 200 epochs' in text
  assert '235520 examples / global batch 1024 = 230.000 steps' in text
  assert 'warmup 1150 steps' in text and 'precision: float32 on cpu' in text


def test_missing_dataset_size_is_a_named_error():
  params = exp_factory.get_exp_config('cvrl_pretrain_k400')
  params.task.train_data.num_examples = -1
  with pytest.raises(base.ConfigError,
                     match='task.train_data.num_examples'):
    schedule.derive(params)
  params = exp_factory.get_exp_config('cvrl_pretrain_k400')
  params.trainer.optimizer_config.learning_rate.type = 'exponential'
  with pytest.raises(base.ConfigError, match='learning_rate.type'):
    schedule.derive(params)
  params = exp_factory.get_exp_config('cvrl_ava_detection')
  params.trainer.decay_epochs = (8,)  # three values need two steps down
  with pytest.raises(base.ConfigError, match='trainer.decay_epochs'):
    schedule.derive(params)
  params.trainer.decay_epochs = (11, 8)
  with pytest.raises(base.ConfigError, match='increasing epochs'):
    schedule.derive(params)
