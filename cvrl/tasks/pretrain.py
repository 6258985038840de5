"""The CVRL pretraining task for Model Garden's trainer (`train_lib`).

On the shared `video_task.VideoTask` loop. train_step: both views through
the encoder and head in one batch (so synced BN sees all 2N clips), InfoNCE
with negatives gathered from every replica, weight decay on kernels, the
per-replica loss divided by the number of replicas (the optimizer sums
gradients across replicas). validation_step:
the same loss and accuracy on held-out videos, without updates, plus the kNN
monitor: leave-one-out kNN top-1 on the backbone features of the labelled
validation videos (`knn_top1_accuracy`).
"""

from typing import Dict

from absl import logging
import numpy as np
import tensorflow as tf
import tf_keras

from official.core import task_factory

from cvrl.eval import knn
from cvrl import losses
from cvrl.configs import pretrain as pretrain_cfg
from cvrl.data import pipelines
from cvrl.data import window_buffer
from cvrl.modeling import cvrl_model
from cvrl.tasks import video_task

# windows_shrunk (augment_on: device): the fraction of views whose crop
# window was shrunk on the host: larger than train_data.device_canvas, or in
# a batch over train_data.device_budget.
WINDOWS_SHRUNK = 'windows_shrunk'
METRIC_NAMES = ('contrastive_loss', 'contrastive_accuracy', 'entropy',
                'regularization_loss', WINDOWS_SHRUNK)
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
class PretrainTask(video_task.VideoTask):
  """Contrastive pretraining of a video encoder (CVRL)."""

  def make_model(self) -> tf_keras.Model:
    data = self.task_config.train_data
    return cvrl_model.build_cvrl_model(
        self.task_config.model,
        (data.num_frames, data.crop_size, data.crop_size, 3))

  def forward(self, model, inputs, training: bool) -> Dict[str, tf.Tensor]:
    """{'embeddings': [2B, 128], 'features': [2B, D]}, first views first."""
    return model(_views(inputs), training=training)

  @property
  def weight_decay(self) -> float:
    return self.task_config.losses.l2_weight_decay

  def build_losses(self, labels, model_outputs,
                   aux_losses=None) -> Dict[str, tf.Tensor]:
    """InfoNCE over the global batch (+ weight decay); labels unused."""
    del labels
    embeddings = tf.cast(model_outputs['embeddings'], tf.float32)
    first, second = tf.split(embeddings, 2, axis=0)
    contrastive = losses.contrastive_loss(
        first, second, self.task_config.losses.temperature,
        tf.distribute.get_replica_context(),
        reduction=self.task_config.losses.reduction)
    regularization = (tf.constant(0.0) if aux_losses is None
                      else tf.cast(aux_losses, tf.float32))
    return {
        video_task.TOTAL_LOSS: contrastive['loss'] + regularization,
        'contrastive_loss': contrastive['loss'],
        'contrastive_accuracy': contrastive['accuracy'],
        'entropy': contrastive['entropy'],
        'regularization_loss': regularization,
    }

  def build_metrics(self, training: bool = True):
    return [tf_keras.metrics.Mean(name) for name in METRIC_NAMES]

  def process_metrics(self, metrics, labels, model_outputs, logs=None,
                      **kwargs):
    """Every metric is the mean of the loss part of its name."""
    del labels, model_outputs, kwargs
    for metric in metrics:
      metric.update_state(logs[metric.name])

  def after_train_step(self, inputs) -> None:
    """Both views of a few clips as images (what the model saw)."""
    clips = self.task_config.image_summary_clips
    if not clips:
      return
    views = _views(inputs)
    batch = tf.shape(views)[0] // 2
    pair = [tf.cast(views[:clips], tf.float32),
            tf.cast(views[batch:batch + clips], tf.float32)]
    if self.task_config.train_data.zero_centering:
      pair = [(v + 1.0) / 2.0 for v in pair]
    # One image per clip: its first view's frames above its second view's.
    strips = tf.concat([_frame_strip(v) for v in pair], axis=1)
    tf.summary.image('augmented_views', strips, max_outputs=clips)

  def device_preprocess(self, inputs):
    """augment_on: device: Algorithm 1 after decoding, batched, here in the
    step: the host sent the batch's decoded crop windows in one uint8
    buffer with their offsets, sizes and drawn parameters; resize, then the
    per-pixel part."""
    if pipelines.VIEW_PARAMS not in inputs:
      return inputs
    data = self.task_config.train_data
    params = inputs[pipelines.VIEW_PARAMS]
    views = pipelines.device_views(inputs['image'],
                                   inputs[pipelines.VIEW_OFFSETS], params,
                                   data)
    views = tf.concat(pipelines.finish_views(
        *tf.split(views, 2), inputs.get(pipelines.DEBIAS_SEED), data), axis=0)
    out = {k: v for k, v in inputs.items()
           if k not in (pipelines.VIEW_PARAMS, pipelines.VIEW_OFFSETS,
                        pipelines.DEBIAS_SEED)}
    out['image'] = views
    out[WINDOWS_SHRUNK] = tf.reduce_mean(
        params[..., window_buffer.SHRUNK])
    return out

  def _step_logs(self, logs, inputs, outputs, metrics):
    # Host mode shrinks nothing: the window is resized from the frame.
    logs = dict(logs, **{WINDOWS_SHRUNK: inputs.get(WINDOWS_SHRUNK, 0.0)})
    return super()._step_logs(logs, inputs, outputs, metrics)

  def evaluation_outputs(self, inputs, outputs):
    if not self.task_config.knn_monitor.k:
      return {}
    # Backbone features of a video (mean of its two views: less
    # augmentation noise than one view), kept for the kNN monitor.
    first, second = tf.split(tf.cast(outputs['features'], tf.float32), 2)
    return {KNN_FEATURES: (first + second) / 2.0,
            KNN_LABELS: inputs['label']}

  def aggregate_logs(self, state=None, step_outputs=None):
    """Collects the kNN features of every evaluation step (host side)."""
    if not step_outputs or KNN_FEATURES not in step_outputs:
      return state
    return video_task.gather_replicas(state, step_outputs,
                                      (KNN_FEATURES, KNN_LABELS))

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
    return {'knn_top1_accuracy': knn.knn_top1(
        features[labelled], labels[labelled], monitor.k,
        monitor.temperature)}

  def inference_step(self, inputs, model):
    return model(inputs, training=False)
