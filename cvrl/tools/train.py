r"""CVRL training driver, on Model Garden's `train_lib`.

  cvrl-train --experiment=cvrl_pretrain_k600 --mode=train_and_eval \
      --model_dir=gs://BUCKET/cvrl/k600 --tpu=TPU_NAME \
      --config_file=experiments/pretrain_k600_r3d50_800ep.yaml

The same command is `python -m cvrl.tools.train` and `python cvrl/train.py`.

Flags are Model Garden's (`--experiment`, `--mode`, `--model_dir`,
`--config_file`, `--params_override`, `--tpu`, ...). Strategy: the config's
`runtime.distribution_strategy`, 'auto' in every recipe: TPUStrategy with
--tpu, else MirroredStrategy over this machine's GPUs (MultiWorkerMirrored
under a multi-worker TF_CONFIG), else the CPU (`cvrl.configs.strategy`).
Precision 'auto' follows the devices that strategy computes on. Both, the
dataset sizes counted from the records and the schedule are logged and
written to params.yaml before the first step.

Evaluations: train_and_eval saves a checkpoint before every evaluation, so an
evaluation that fails loses no training (the error names the checkpoint).

Resuming: running the same command again restores the last checkpoint in
--model_dir, and the input pipeline starts at that step with exactly the
batches an uninterrupted run would see (stateless, position-keyed input).
A last checkpoint that cannot be read is named and the newest readable one
is used (`cvrl.tasks.resume`). SIGTERM or Ctrl-C stops after the current
step with a checkpoint and exits with 128 + the signal's number (143, 130),
so that a restart loop runs the command again (`cvrl.tasks.preemption`).
"""

import contextlib
import functools
import os
import sys
from typing import Optional

from cvrl.data import host_malloc  # no TensorFlow

# As a command, re-execute with the malloc settings before TensorFlow loads
# (glibc reads them at start; loading TensorFlow twice costs ~10 s a job).
# `run` re-checks: `python cvrl/train.py` imports this module first.
if __name__ == '__main__' or os.path.basename(sys.argv[0]) == 'cvrl-train':
  host_malloc.maybe_reexec()

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
from absl import logging
import tensorflow as tf

from official.common import flags as tfm_flags
from official.core import exp_factory
from official.core import task_factory
from official.core import train_lib
from official.core import train_utils
from official.modeling import performance

from cvrl import registry_imports  # pylint: disable=unused-import  # noqa: F401
from cvrl.configs import base
from cvrl.configs import launch
from cvrl.configs import precision
from cvrl.configs import strategy
from cvrl.data import video_sources
from cvrl.tasks import preemption
from cvrl.tasks import resume
from cvrl.tasks import train_actions
from cvrl.tools import cli

FLAGS = flags.FLAGS


def sections_to_check(mode: str):
  """The inputs whose record counts a job of `mode` checks."""
  return ((('train_data',) if 'train' in mode else ()) +
          (('validation_data',) if 'eval' in mode else ()))


def run_experiment(params, mode: str, model_dir: str,
                   devices: Optional[precision.Devices] = None):
  """Prepares `params` (sizes, schedule, strategy, precision), writes
  params.yaml and runs `mode` in `model_dir` (any file system); returns
  Model Garden's (model, eval logs)."""
  # Dataset sizes, steps from epochs, the strategy for this machine and the
  # precision for its devices: worked out now, so that params.yaml holds
  # what this run uses.
  launch.prepare(params, devices, check_sizes=sections_to_check(mode),
                model_dir=model_dir if 'train' in mode else '')
  resume_from = None
  if 'train' in mode:
    try:
      resume_from, step, lines = resume.select(
          model_dir, is_chief=launch.is_chief(os.environ.get('TF_CONFIG')))
    except resume.ResumeError as e:
      raise base.ConfigError(f'--model_dir: {e}') from e
    for line in lines:
      print(line, file=sys.stderr)
    params.task.train_data.start_step = step
    if step:
      logging.info('resuming at step %d', step)
    train_utils.serialize_config(params, model_dir)
  params.lock()
  if params.runtime.mixed_precision_dtype:
    performance.set_mixed_precision_policy(params.runtime.mixed_precision_dtype)
  distribution = strategy.build(params)
  with distribution.scope():
    task = task_factory.get_task(params.task, logging_dir=model_dir)
    trainer = train_utils.create_trainer(
        params, task, train='train' in mode, evaluate='eval' in mode,
        checkpoint_exporter=train_utils.maybe_create_best_ckpt_exporter(
            params, model_dir),
        trainer_cls=preemption.StoppableTrainer)
    if resume_from:
      # Every worker restores the same checkpoint now, before Model Garden
      # builds its actions: its preemption handler restores through the
      # chief's checkpoint manager on the chief only (a non-chief worker's
      # manager is a new temporary folder), and workers whose variables
      # differ in what a restore created fail their first collective.
      trainer.checkpoint.restore(resume_from).expect_partial()
  actions = []
  guard = None
  if 'train' in mode:
    actions.append(train_actions.ExamplesPerSecond(
        trainer.global_step, params.task.train_data.global_batch_size,
        os.path.join(model_dir, 'train'),
        total_steps=params.trainer.train_steps,
        start_step=params.task.train_data.start_step))
    if preemption.model_garden_handles_it(params, distribution):
      logging.info('preemption: Model Garden\'s on-demand checkpoint action '
                   '(cluster resolver) handles it')
    else:
      guard = trainer.guard = preemption.Guard(
          printer=functools.partial(print, file=sys.stderr))
  with guard or contextlib.nullcontext():
    return train_lib.run_experiment(
        distribution_strategy=distribution, task=task, mode=mode,
        params=params, model_dir=model_dir, trainer=trainer,
        train_actions=actions,
        controller_cls=functools.partial(
            train_actions.CheckpointFirstController, guard=guard,
            restored_from=resume_from))


def input_paths(params):
  return [getattr(params.task, name).input_path
          for name in ('train_data', 'validation_data')
          if getattr(getattr(params.task, name, None), 'input_path', '')]


def list_experiments() -> str:
  lines = []
  for name in launch.registered_experiments():
    if name.startswith('cvrl_'):
      factory = exp_factory._REGISTERED_CONFIGS[name]  # pylint: disable=protected-access
      doc = (factory.__doc__ or '').strip().splitlines()
      lines.append(f'{name:40s} {doc[0] if doc else ""}')
  return '\n'.join(lines)


def main(_):
  if _LIST_EXPERIMENTS.value:
    print(list_experiments())
    return
  for name in ('experiment', 'mode', 'model_dir'):
    if not getattr(FLAGS, name):
      raise app.UsageError(f'--{name} is required (--list_experiments lists '
                           'the experiments)')
  params = launch.parse_flags(FLAGS)
  try:
    run_experiment(params, FLAGS.mode, FLAGS.model_dir)
  except preemption.Preempted as e:
    status = preemption.exit_status(e.signal_name)
    print(f'train: stopped by {e.signal_name} at step {e.step}; saved '
          f'{e.checkpoint}. Run the same command to resume (exit status '
          f'{status}: not finished).', file=sys.stderr, flush=True)
    sys.exit(status)
  except (tf.errors.DataLossError, train_actions.EvaluationError) as e:
    # A damaged record, in training or in an evaluation: name the file.
    cause = e if isinstance(e, tf.errors.DataLossError) else e.__cause__
    if not isinstance(cause, tf.errors.DataLossError):
      raise
    if _names_a_checkpoint(str(cause), FLAGS.model_dir):
      # A checkpoint's bytes, not an input record: never scan the inputs.
      raise base.ConfigError(
          f'--model_dir: a checkpoint cannot be read: '
          f'{str(cause).strip().splitlines()[0]}') from e
    raise video_sources.InputError(video_sources.explain_data_loss(
        cause, input_paths(params))) from e


def _names_a_checkpoint(message: str, model_dir: str) -> bool:
  return bool(model_dir) and (model_dir.rstrip('/') + '/') in message


def main_with_errors(argv):
  """main, with the errors a user can fix said in one line (exit 1); the
  traceback follows at --verbosity=1 and above."""
  try:
    main(argv)
  except (base.ConfigError, video_sources.InputError,
          train_actions.EvaluationError) as e:
    logging.debug('traceback', exc_info=True)
    print(f'train: error: {e}', file=sys.stderr)
    sys.exit(1)


_LIST_EXPERIMENTS = flags.DEFINE_bool(
    'list_experiments', False, 'Print the registered experiments and exit.')
flags.DEFINE_bool(
    'tune_malloc', None, 'Run with glibc malloc kept from returning large '
    'input buffers to the kernel (the command re-executes itself once with '
    'MALLOC_* set; cvrl/data/host_malloc.py). Unset: on for hosts of at '
    f'most {host_malloc.AUTO_MAX_CPUS} CPUs, where it was measured; off: '
    'glibc defaults.')


def run():
  """The command (`python -m cvrl.tools.train`, `cvrl-train`,
  `python cvrl/train.py`): --help lists its flags and the experiments."""
  malloc_line = host_malloc.maybe_reexec()  # returns unless re-executing
  if malloc_line:
    logging.info('%s', malloc_line)
    print(malloc_line, file=sys.stderr)
  tfm_flags.define_flags()
  flags.adopt_module_key_flags(tfm_flags)
  cli.run(main_with_errors, usage=f'{__doc__}\nRegistered experiments '
          f'(--experiment=NAME):\n\n{list_experiments()}\n')


if __name__ == '__main__':
  run()
