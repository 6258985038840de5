"""The base of CVRL's tasks, on Model Garden's public `base_task.Task` contract.

Both tasks (pretraining, classification) are the same loop around different
models and losses; what differs is what they implement:

  make_model()                          the Keras model (build_model seeds it)
  device_preprocess(inputs)             input work on the accelerator
  forward(model, inputs, training)      the model's outputs for a batch
  build_losses(labels, model_outputs,   {'total_loss': ..., named parts}
               aux_losses)              (aux_losses: the weight decay)
  build_metrics(training)               Keras metrics
  process_metrics(metrics, labels,      updates them from the outputs and
                  model_outputs, logs)  the loss parts
  weight_decay                          the l2 coefficient of this task

The base gives build_model, build_inputs (`pipelines.build_dataset`),
train_step (loss / replicas, loss scaling, optional XLA) and
validation_step, so that Model Garden's trainer, the tests and any other
caller see one contract.
"""

from typing import Dict, Optional

from absl import logging
import numpy as np
import tensorflow as tf
import tf_keras

from official.core import base_task

from cvrl import losses
from cvrl.data import pipelines
from cvrl.modeling import checkpoint_restore
from cvrl.tasks import gradients

TOTAL_LOSS = 'total_loss'


class VideoTask(base_task.Task):
  """Shared loop of the video tasks (see the module doc)."""

  def __init__(self, params, logging_dir: Optional[str] = None,
               name: Optional[str] = None):
    super().__init__(params, logging_dir=logging_dir, name=name)
    params.validate()
    self._grads_fn = (tf.function(self._loss_and_grads, jit_compile=True)
                      if params.jit_compile else self._loss_and_grads)

  # What a task implements.
  def make_model(self) -> tf_keras.Model:
    raise NotImplementedError

  def forward(self, model, inputs, training: bool) -> Dict[str, tf.Tensor]:
    raise NotImplementedError

  @property
  def weight_decay(self) -> float:
    raise NotImplementedError

  # The shared loop.
  def build_model(self) -> tf_keras.Model:
    # Seeds Python, NumPy and TF: initial weights depend only on init_seed.
    tf_keras.utils.set_random_seed(self.task_config.init_seed)
    return self.make_model()

  def build_inputs(self, params, input_context=None) -> tf.data.Dataset:
    return pipelines.build_dataset(params, input_context)

  def regularization(self, model) -> tf.Tensor:
    """weight_decay * sum(||kernel||^2 / 2) over the trainable kernels."""
    return losses.weight_decay_loss(model.trainable_variables,
                                    self.weight_decay)

  def step_losses(self, model, inputs, training: bool):
    """(loss parts, model outputs) of a batch: forward, then build_losses."""
    outputs = self.forward(model, inputs, training)
    logs = self.build_losses(inputs.get('label'), outputs,
                             aux_losses=self.regularization(model))
    return logs, outputs

  def _loss_and_grads(self, model, optimizer, inputs):
    kept = {}

    def compute():
      logs, kept['outputs'] = self.step_losses(model, inputs, training=True)
      return logs
    logs, grads = gradients.replica_loss_and_grads(
        compute, optimizer, lambda: model.trainable_variables)
    return logs, grads, kept['outputs']

  def restore_pretrained_backbone(self, backbone: tf_keras.Model) -> None:
    """For fine-tuning tasks (initialize): the backbone from
    task.init_checkpoint, every variable checked, unless
    task.random_backbone keeps it random."""
    if self.task_config.random_backbone:
      logging.info('random_backbone: the backbone keeps its random weights '
                   '(init_seed=%d)', self.task_config.init_seed)
      return
    used = checkpoint_restore.restore_backbone(
        backbone, self.task_config.init_checkpoint)
    logging.info('restored the backbone from %s (all %d variables matched)',
                 used, len(backbone.weights))

  def device_preprocess(self, inputs):
    """Input work done on the accelerator at the start of a step (nothing
    by default; pretraining applies Algorithm 1's per-pixel part there with
    `augment_on: device`)."""
    return inputs

  def train_step(self, inputs, model, optimizer, metrics=None):
    inputs = self.device_preprocess(inputs)
    logs, grads, outputs = self._grads_fn(model, optimizer, inputs)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    self.after_train_step(inputs)
    return self._step_logs(logs, inputs, outputs, metrics)

  def after_train_step(self, inputs) -> None:
    """A hook for summaries of the inputs (nothing by default)."""
    del inputs

  def evaluation_outputs(self, inputs, outputs) -> Dict[str, tf.Tensor]:
    """Tensors a validation step also returns, for aggregate_logs on the
    host (the kNN monitor's features, detections); none by default."""
    del inputs, outputs
    return {}

  def validation_step(self, inputs, model, metrics=None):
    inputs = self.device_preprocess(inputs)
    logs, outputs = self.step_losses(model, inputs, training=False)
    out = self._step_logs(logs, inputs, outputs, metrics)
    out.update(self.evaluation_outputs(inputs, outputs))
    return out

  def _step_logs(self, logs, inputs, outputs, metrics):
    self.process_metrics(metrics or [], inputs.get('label'), outputs,
                         logs=logs)
    out = {self.loss: logs[TOTAL_LOSS]}
    out.update({m.name: m.result() for m in metrics or []})
    return out


def gather_replicas(state: Dict[str, list], step_logs,
                    keys) -> Dict[str, list]:
  """aggregate_logs' common part: appends each key's value from every local
  replica (a tuple under a distribution strategy, else one tensor) to
  state[key] as NumPy; a new state when `state` is None."""
  state = state if state is not None else {k: [] for k in keys}
  for key in keys:
    values = step_logs[key]
    if not isinstance(values, (tuple, list)):
      values = [values]
    state[key].extend(np.asarray(v) for v in values)
  return state
