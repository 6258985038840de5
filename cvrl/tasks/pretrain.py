"""The CVRL pretraining task for Model Garden's trainer (`train_lib`).

train_step: both views through the encoder and head in one batch (so synced
BN sees all 2N clips), InfoNCE with negatives gathered from every replica,
weight decay on kernels, the per-replica loss divided by the number of
replicas (the optimizer sums gradients across replicas). validation_step:
the same loss and accuracy on held-out videos, without updates, plus the kNN
monitor: leave-one-out kNN top-1 on the backbone features of the labelled
validation videos (`knn_top1_accuracy`).
"""

from typing import Dict, Optional

from absl import logging
import numpy as np
import tensorflow as tf
import tf_keras

from official.core import base_task
from official.core import task_factory

from cvrl import evaluation
from cvrl import losses
from cvrl.configs import pretrain as pretrain_cfg
from cvrl.data import pipelines
from cvrl.modeling import cvrl_model
from cvrl.tasks import gradients

METRIC_NAMES = ('contrastive_loss', 'contrastive_accuracy', 'entropy',
                'regularization_loss')
KNN_FEATURES, KNN_LABELS = 'knn_features', 'knn_labels'


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

  def _losses(self, model, views, training: bool,
              outputs=None) -> Dict[str, tf.Tensor]:
    if outputs is None:
      outputs = model(views, training=training)
    embeddings = tf.cast(outputs['embeddings'], tf.float32)
    first, second = tf.split(embeddings, 2, axis=0)
    contrastive = losses.contrastive_loss(
        first, second, self.task_config.losses.temperature,
        tf.distribute.get_replica_context(),
        reduction=self.task_config.losses.reduction)
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
    return gradients.replica_loss_and_grads(
        lambda: self._losses(model, views, training=True), optimizer,
        lambda: model.trainable_variables)

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
    views = _views(inputs)
    outputs = model(views, training=False)
    logs = self._update_metrics(
        self._losses(model, views, training=False, outputs=outputs), metrics)
    if self.task_config.knn_monitor.k:
      # Backbone features of a video (mean of its two views: less
      # augmentation noise than one view), kept for the kNN monitor.
      first, second = tf.split(tf.cast(outputs['features'], tf.float32), 2)
      logs[KNN_FEATURES] = (first + second) / 2.0
      logs[KNN_LABELS] = inputs['label']
    return logs

  def aggregate_logs(self, state=None, step_outputs=None):
    """Collects the kNN features of every evaluation step (host side)."""
    if not step_outputs or KNN_FEATURES not in step_outputs:
      return state
    state = state or {KNN_FEATURES: [], KNN_LABELS: []}
    for key in (KNN_FEATURES, KNN_LABELS):
      # One value per local replica under a distribution strategy.
      values = step_outputs[key]
      if not isinstance(values, (tuple, list)):
        values = [values]
      state[key].extend(np.asarray(v) for v in values)
    return state

  def reduce_aggregated_logs(self, aggregated_logs, global_step=None):
    """knn_top1_accuracy over the labelled validation videos."""
    if not aggregated_logs:
      return {}
    features = np.concatenate(aggregated_logs[KNN_FEATURES])
    labels = np.concatenate(aggregated_logs[KNN_LABELS])
    labelled = labels >= 0
    if labelled.sum() < 2:
      logging.warning('kNN monitor: fewer than 2 labelled validation videos')
      return {}
    monitor = self.task_config.knn_monitor
    return {'knn_top1_accuracy': evaluation.knn_top1(
        features[labelled], labels[labelled], monitor.k,
        monitor.temperature)}

  def _update_metrics(self, logs, metrics):
    out = {self.loss: logs['total_loss']}
    for metric in metrics or []:
      metric.update_state(logs[metric.name])
      out[metric.name] = metric.result()
    return out

  def inference_step(self, inputs, model):
    return model(inputs, training=False)
