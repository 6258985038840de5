r"""CVRL training driver, on Model Garden's `train_lib`.

  python -m cvrl.tools.train --experiment=cvrl_pretrain_k600 --mode=train_and_eval \
      --model_dir=gs://BUCKET/cvrl/k600 --tpu=TPU_NAME \
      --config_file=experiments/pretrain_k600_r3d50_800ep.yaml

Flags are Model Garden's (`--experiment`, `--mode`, `--model_dir`,
`--config_file`, `--params_override`, `--tpu`, ...). Strategy: TPUStrategy
when --tpu is given; otherwise the config's strategy ('mirrored' over local
GPUs/CPU, or 'one_device'), with 'tpu' falling back to 'mirrored'.

Resuming: running the same command again restores the last checkpoint in
--model_dir, and the input pipeline starts at that step with exactly the
batches an uninterrupted run would see (stateless, position-keyed input).
"""

import os

from absl import app
from absl import flags
from absl import logging
import tensorflow as tf

from official.common import distribute_utils
from official.common import flags as tfm_flags
from official.core import task_factory
from official.core import train_lib
from official.core import train_utils
from official.modeling import performance

from cvrl import registry_imports  # pylint: disable=unused-import  # noqa: F401
from cvrl.configs import launch
from cvrl.tasks import train_actions

FLAGS = flags.FLAGS


def resume_step(model_dir: str) -> int:
  """Global step of the latest checkpoint in model_dir, 0 if none."""
  latest = tf.train.latest_checkpoint(model_dir) if model_dir else None
  if not latest:
    return 0
  return int(train_utils.read_global_step_from_checkpoint(latest))


def strategy_name(params) -> str:
  if params.runtime.tpu:
    return 'tpu'
  name = params.runtime.distribution_strategy
  return 'mirrored' if name == 'tpu' else name


def main(_):
  params = launch.parse_flags(FLAGS)
  model_dir = FLAGS.model_dir
  # Steps from epochs and the dataset size, precision for these devices:
  # worked out now, so that params.yaml holds what this run uses.
  launch.prepare(params)
  if 'train' in FLAGS.mode:
    params.task.train_data.start_step = resume_step(model_dir)
    if params.task.train_data.start_step:
      logging.info('resuming at step %d', params.task.train_data.start_step)
    train_utils.serialize_config(params, model_dir)
  params.lock()
  if params.runtime.mixed_precision_dtype:
    performance.set_mixed_precision_policy(params.runtime.mixed_precision_dtype)
  strategy = distribute_utils.get_distribution_strategy(
      distribution_strategy=strategy_name(params),
      all_reduce_alg=params.runtime.all_reduce_alg,
      num_gpus=params.runtime.num_gpus,
      tpu_address=params.runtime.tpu)
  with strategy.scope():
    task = task_factory.get_task(params.task, logging_dir=model_dir)
    trainer = train_utils.create_trainer(
        params, task, train='train' in FLAGS.mode,
        evaluate='eval' in FLAGS.mode,
        checkpoint_exporter=train_utils.maybe_create_best_ckpt_exporter(
            params, model_dir))
  actions = []
  if 'train' in FLAGS.mode:
    actions.append(train_actions.ExamplesPerSecond(
        trainer.global_step, params.task.train_data.global_batch_size,
        os.path.join(model_dir, 'train')))
  train_lib.run_experiment(
      distribution_strategy=strategy, task=task, mode=FLAGS.mode,
      params=params, model_dir=model_dir, trainer=trainer,
      train_actions=actions)


def run():
  tfm_flags.define_flags()
  flags.mark_flags_as_required(['experiment', 'mode', 'model_dir'])
  app.run(main)


if __name__ == '__main__':
  run()
