"""The CVRL pretraining task for Model Garden's trainer (`train_lib`).

train_step: both views through the encoder and head in one batch (so synced
BN sees all 2N clips), InfoNCE with negatives gathered from every replica,
weight decay on kernels, the per-replica loss divided by the number of
replicas (the optimizer sums gradients across replicas). validation_step:
the same loss and accuracy on held-out videos, without updates.
"""

from typing import Dict, Optional

import tensorflow as tf
import tf_keras

from official.core import base_task
from official.core import task_factory

from cvrl import losses
from cvrl.configs import pretrain as pretrain_cfg
from cvrl.data import pipelines
from cvrl.modeling import cvrl_model

METRIC_NAMES = ('contrastive_loss', 'contrastive_accuracy', 'entropy',
                'regularization_loss')


def _views(features) -> tf.Tensor:
  """[2B, T, H, W, 3], first views first, from either output layout."""
  if 'image' in features:
    return features['image']
  return tf.concat([features['view_1'], features['view_2']], axis=0)


def _frame_strip(clips: tf.Tensor, num_frames: int = 4) -> tf.Tensor:
  """[n, T, H, W, 3] -> [n, H, num_frames * W, 3] frames side by side."""
  steps = clips.shape[1]
  picks = [int(i * (steps - 1) / max(1, num_frames - 1))
           for i in range(num_frames)]
  return tf.concat([clips[:, i] for i in picks], axis=2)


@task_factory.register_task_cls(pretrain_cfg.PretrainTaskConfig)
class PretrainTask(base_task.Task):
  """Contrastive pretraining of a video encoder (CVRL)."""

  def __init__(self, params: pretrain_cfg.PretrainTaskConfig,
               logging_dir: Optional[str] = None, name: Optional[str] = None):
    super().__init__(params, logging_dir=logging_dir, name=name)
    params.validate()
    self._grads_fn = (tf.function(self._loss_and_grads, jit_compile=True)
                      if params.jit_compile else self._loss_and_grads)

  def _input_shape(self):
    data = self.task_config.train_data
    return (data.num_frames, data.crop_size, data.crop_size, 3)

  def build_model(self) -> tf_keras.Model:
    # Seeds Python, NumPy and TF: initial weights depend only on init_seed.
    tf_keras.utils.set_random_seed(self.task_config.init_seed)
    return cvrl_model.build_cvrl_model(self.task_config.model,
                                       self._input_shape())

  def build_inputs(self, params, input_context=None) -> tf.data.Dataset:
    return pipelines.build_dataset(params, input_context)

  def build_metrics(self, training: bool = True):
    return [tf_keras.metrics.Mean(name) for name in METRIC_NAMES]

  def _losses(self, model, views, training: bool) -> Dict[str, tf.Tensor]:
    outputs = model(views, training=training)
    embeddings = tf.cast(outputs['embeddings'], tf.float32)
    first, second = tf.split(embeddings, 2, axis=0)
    contrastive = losses.contrastive_loss(
        first, second, self.task_config.losses.temperature,
        tf.distribute.get_replica_context())
    regularization = losses.weight_decay_loss(
        model.trainable_variables, self.task_config.losses.l2_weight_decay)
    return {
        'total_loss': contrastive['loss'] + regularization,
        'contrastive_loss': contrastive['loss'],
        'contrastive_accuracy': contrastive['accuracy'],
        'entropy': contrastive['entropy'],
        'regularization_loss': regularization,
    }

  def _loss_and_grads(self, model, optimizer, views):
    num_replicas = tf.distribute.get_strategy().num_replicas_in_sync
    with tf.GradientTape() as tape:
      logs = self._losses(model, views, training=True)
      scaled = logs['total_loss'] / num_replicas
      if isinstance(optimizer, tf_keras.mixed_precision.LossScaleOptimizer):
        scaled = optimizer.get_scaled_loss(scaled)
    grads = tape.gradient(scaled, model.trainable_variables)
    if isinstance(optimizer, tf_keras.mixed_precision.LossScaleOptimizer):
      grads = optimizer.get_unscaled_gradients(grads)
    return logs, grads

  def _image_summaries(self, views: tf.Tensor) -> None:
    clips = self.task_config.image_summary_clips
    if not clips:
      return
    batch = tf.shape(views)[0] // 2
    pair = [tf.cast(views[:clips], tf.float32),
            tf.cast(views[batch:batch + clips], tf.float32)]
    if self.task_config.train_data.zero_centering:
      pair = [(v + 1.0) / 2.0 for v in pair]
    # One image per clip: its first view's frames above its second view's.
    strips = tf.concat([_frame_strip(v) for v in pair], axis=1)
    tf.summary.image('augmented_views', strips, max_outputs=clips)

  def train_step(self, inputs, model, optimizer, metrics=None):
    views = _views(inputs)
    logs, grads = self._grads_fn(model, optimizer, views)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    self._image_summaries(views)
    return self._update_metrics(logs, metrics)

  def validation_step(self, inputs, model, metrics=None):
    logs = self._losses(model, _views(inputs), training=False)
    return self._update_metrics(logs, metrics)

  def _update_metrics(self, logs, metrics):
    out = {self.loss: logs['total_loss']}
    for metric in metrics or []:
      metric.update_state(logs[metric.name])
      out[metric.name] = metric.result()
    return out

  def inference_step(self, inputs, model):
    return model(inputs, training=False)
