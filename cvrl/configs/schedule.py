"""Training length in epochs, turned into steps when the job starts.

A recipe says "800 epochs, 5 of warmup, batch 1024"; how many steps that is
depends on how many videos the user's copy of the dataset has, which the
recipe cannot know. So experiment factories set `trainer.epochs` (and the
warmup and interval epochs) and leave `trainer.train_steps` at 0; `derive`
runs right before the config is locked, in every entry point (through
`cvrl.configs.launch.prepare`), and writes

  train_steps      round(epochs x num_examples / global batch), at least 1
  warmup steps     round(warmup_epochs x steps per epoch), at most half of
                   train_steps
  cosine decay     from the end of warmup to exactly 0 at train_steps
  checkpoint / validation intervals  (when given in epochs), never longer
                   than the run: its first evaluation comes during training

into the config, so params.yaml holds the numbers the run used. Steps per
epoch are not floored: 1% of K400 (2,355 videos) at batch 1024 trains 230
steps for 100 epochs, not 200 (87 epochs).

An explicit `trainer.train_steps` > 0 wins over epochs: the decay ends at
it and the warmup (and a stepwise schedule's steps down) keep the recipe's
share of the run (warmup_epochs / epochs of train_steps), so a short smoke
test is not all warmup. An interval is taken from its epochs field only
when that is > 0. A run whose steps, warmup, decay and intervals are all
explicit does not depend on the dataset's size (`depends_on_size`): a
smoke test on a few records of a Kinetics recipe.
"""

import dataclasses
from typing import Dict, Tuple

from official.core import config_definitions as cfg

from cvrl.configs import base

# Learning-rate schedules whose length `derive` can set.
_SIZED_SCHEDULES = ('cosine', 'constant', 'stepwise')


@dataclasses.dataclass
class TrainerConfig(cfg.TrainerConfig):
  """Model Garden's trainer config with durations in epochs.

  epochs: training length (0: use train_steps as given). warmup_epochs:
  linear warmup from 0. checkpoint_epochs / validation_epochs: intervals
  (0: use checkpoint_interval / validation_interval as given).
  """
  epochs: float = 0.0
  warmup_epochs: float = 0.0
  checkpoint_epochs: float = 0.0
  validation_epochs: float = 0.0
  # Epochs at which a 'stepwise' learning rate steps down (detection's 1x
  # schedule: 8, 11); one fewer than the schedule's values.
  decay_epochs: Tuple[float, ...] = ()


def depends_on_size(params: cfg.ExperimentConfig) -> bool:
  """Whether `derive` uses task.train_data.num_examples: epochs and no
  explicit train_steps, or an interval given in epochs."""
  trainer = params.trainer
  if not getattr(trainer, 'epochs', 0.0):
    return False
  return (trainer.train_steps <= 0 or
          getattr(trainer, 'checkpoint_epochs', 0.0) > 0 or
          getattr(trainer, 'validation_epochs', 0.0) > 0)


def _round_to_loop(steps: int, loop: int) -> int:
  """The multiple of `loop` nearest to `steps`, at least `loop`."""
  return max(loop, int(round(steps / loop)) * loop)


def derive(params: cfg.ExperimentConfig) -> Dict[str, float]:
  """Derives the step counts in place (see the module doc); returns them.

  Does nothing (returns {}) for a trainer without epochs: its steps, warmup
  and decay are used as configured. Raises ConfigError
  naming the field when the numbers cannot make a schedule.
  """
  trainer = params.trainer
  epochs = getattr(trainer, 'epochs', 0.0)
  if not epochs and not trainer.train_steps:
    raise base.ConfigError(
        'trainer.epochs=0 and trainer.train_steps=0: expected a training '
        'length (epochs, or steps)')
  if not epochs:
    return {}
  base.check(epochs > 0, 'trainer.epochs', epochs, '> 0')
  data = params.task.train_data
  base.check(
             data.num_examples > 0, 'task.train_data.num_examples',
             data.num_examples,
             'the number of training videos (> 0): the schedule is derived from '
             'it; inspect_tfrecords prints it')
  steps_per_epoch = data.num_examples / data.global_batch_size
  explicit_steps = trainer.train_steps > 0
  total = (trainer.train_steps if explicit_steps
           else max(1, int(round(epochs * steps_per_epoch))))
  base.check(trainer.warmup_epochs >= 0, 'trainer.warmup_epochs',
             trainer.warmup_epochs, '>= 0')
  warmup = warmup_steps(total, trainer.warmup_epochs, epochs,
                        steps_per_epoch, explicit_steps)
  trainer.train_steps = total
  _size_learning_rate(trainer.optimizer_config, total, warmup)
  if trainer.optimizer_config.learning_rate.type == 'stepwise':
    _size_steps(trainer, total / epochs if explicit_steps else
                steps_per_epoch, total)

  loop = max(1, min(trainer.steps_per_loop, total))
  for field in ('checkpoint', 'validation'):
    interval_epochs = getattr(trainer, f'{field}_epochs')
    if interval_epochs > 0:
      setattr(trainer, f'{field}_interval',
              max(1, int(round(interval_epochs * steps_per_epoch))))
    # A loop longer than an interval would skip past it.
    loop = min(loop, getattr(trainer, f'{field}_interval') or loop)
  trainer.steps_per_loop = loop
  trainer.summary_interval = _round_to_loop(
      trainer.summary_interval or loop, loop)
  for field in ('checkpoint_interval', 'validation_interval'):
    # Rounding to the loop may pass the end (79,000 for a 78,988-step run):
    # the first evaluation would then come only after training.
    setattr(trainer, field,
            min(total, _round_to_loop(getattr(trainer, field), loop)))
  return {
      'epochs': total / steps_per_epoch,
      'steps_per_epoch': steps_per_epoch,
      'train_steps': total, 'warmup_steps': warmup,
      'decay_steps': total - warmup,
      'steps_per_loop': loop,
      'summary_interval': trainer.summary_interval,
      'checkpoint_interval': trainer.checkpoint_interval,
      'validation_interval': trainer.validation_interval,
      'explicit_train_steps': explicit_steps,
  }


def warmup_steps(total: int, warmup_epochs: float, epochs: float,
                 steps_per_epoch: float, explicit_steps: bool) -> int:
  """Linear-warmup steps of a `total`-step run, at most half of it.

  From epochs: warmup_epochs x steps per epoch. With an explicit
  train_steps: the recipe's share, total x warmup_epochs / epochs (5 of 800
  epochs of a 1,000-step smoke test is 6 steps, not 999).
  """
  if explicit_steps:
    warmup = int(round(total * warmup_epochs / epochs))
  else:
    warmup = int(round(warmup_epochs * steps_per_epoch))
  return min(warmup, total // 2)


def _size_learning_rate(optimization, total: int, warmup: int) -> None:
  """Linear warmup over `warmup` steps, then the decay ends at `total`."""
  lr = optimization.learning_rate
  base.check(
             lr.type in _SIZED_SCHEDULES,
             'trainer.optimizer_config.learning_rate.type', lr.type,
             f'one of {_SIZED_SCHEDULES} (the schedules derived from epochs)')
  if lr.type == 'cosine':
    # Model Garden's CosineDecay with offset: lr(step) = cosine(step - offset)
    # so the half-cosine starts where warmup ends and is 0 at `total`.
    lr.cosine.decay_steps = total - warmup
    lr.cosine.offset = warmup
  if warmup:
    optimization.warmup.type = 'linear'
    optimization.warmup.linear.warmup_steps = warmup
    optimization.warmup.linear.warmup_learning_rate = 0.0
  else:
    optimization.warmup.type = None


def _size_steps(trainer, steps_per_epoch: float, total: int) -> None:
  """Stepwise boundaries (in steps) from trainer.decay_epochs."""
  stepwise = trainer.optimizer_config.learning_rate.stepwise
  epochs = list(getattr(trainer, 'decay_epochs', ()) or ())
  base.check(bool(stepwise.values),
             'trainer.optimizer_config.learning_rate.stepwise.values',
             stepwise.values, 'the learning rates of the steps')
  base.check(len(epochs) == len(stepwise.values) - 1, 'trainer.decay_epochs',
             epochs, f'{len(stepwise.values) - 1} epochs, one per step down '
             f'of the stepwise values {list(stepwise.values)}')
  base.check(all(0 < e < trainer.epochs for e in epochs) and
             epochs == sorted(epochs), 'trainer.decay_epochs', epochs,
             f'increasing epochs inside (0, trainer.epochs={trainer.epochs})')
  stepwise.boundaries = [
      min(total - 1, max(1, int(round(e * steps_per_epoch)))) for e in epochs]


def describe(derived: Dict[str, float], params: cfg.ExperimentConfig) -> str:
  """One paragraph for the job's log: what the schedule came to."""
  if not derived:
    return 'schedule: as configured (no trainer.epochs)'
  data = params.task.train_data
  source = ('trainer.train_steps (explicit)' if derived['explicit_train_steps']
            else f'{params.trainer.epochs:g} epochs')
  lines = [
      f'schedule: {derived["train_steps"]} train steps from {source}',
      f'  {data.num_examples} examples / global batch '
      f'{data.global_batch_size} = {derived["steps_per_epoch"]:.3f} steps '
      f'per epoch -> {derived["epochs"]:.3f} epochs']
  lines.append(
      f'  warmup {derived["warmup_steps"]} steps, then '
      f'{params.trainer.optimizer_config.learning_rate.type} decay over '
      f'{derived["decay_steps"]} steps to step {derived["train_steps"]}')
  lines.append(
      f'  steps_per_loop {derived["steps_per_loop"]}, summaries every '
      f'{derived["summary_interval"]}, checkpoints every '
      f'{derived["checkpoint_interval"]}, validation every '
      f'{derived["validation_interval"]} steps')
  return '\n'.join(lines)
