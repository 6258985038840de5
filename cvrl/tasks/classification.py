"""Video classification task: linear evaluation, fine-tuning, supervised.

train_step: one clip per video, softmax cross-entropy (+ weight decay), the
per-replica loss divided by the number of replicas. validation_step: every
view of a test video through the model, softmax averaged over the views,
top-1 / top-5 of the averaged prediction (paper 4.1: 10 clips x 3 crops).

initialize (called by the trainer when model_dir has no checkpoint of its
own): restores the backbone from `init_checkpoint` after checking every
variable against it; `random_backbone` is the only way to start from
random weights.
"""

from typing import Optional

from absl import logging
import tensorflow as tf
import tf_keras

from official.core import base_task
from official.core import task_factory

from cvrl import evaluation
from cvrl import losses
from cvrl.configs import classification as classification_cfg
from cvrl.data import pipelines
from cvrl.modeling import checkpoint_restore
from cvrl.modeling import classifier
from cvrl.tasks import gradients

LOSS_METRICS = ('classification_loss', 'regularization_loss')


def _accuracy_metrics():
  return [tf_keras.metrics.SparseCategoricalAccuracy('top_1_accuracy'),
          tf_keras.metrics.SparseTopKCategoricalAccuracy(
              k=5, name='top_5_accuracy')]


@task_factory.register_task_cls(classification_cfg.ClassificationTaskConfig)
class ClassificationTask(base_task.Task):
  """Supervised video classification on an R3D backbone."""

  def __init__(self, params: classification_cfg.ClassificationTaskConfig,
               logging_dir: Optional[str] = None, name: Optional[str] = None):
    super().__init__(params, logging_dir=logging_dir, name=name)
    params.validate()
    self._grads_fn = (tf.function(self._loss_and_grads, jit_compile=True)
                      if params.jit_compile else self._loss_and_grads)

  def build_model(self) -> classifier.VideoClassifier:
    tf_keras.utils.set_random_seed(self.task_config.init_seed)
    return classifier.build_classifier(self.task_config)

  def initialize(self, model: classifier.VideoClassifier) -> None:
    if self.task_config.random_backbone:
      logging.info('random_backbone: the backbone keeps its random weights '
                   '(init_seed=%d)', self.task_config.init_seed)
      return
    used = checkpoint_restore.restore_backbone(
        model.backbone, self.task_config.init_checkpoint)
    logging.info('restored the backbone from %s (all %d variables matched)',
                 used, len(model.backbone.weights))

  def build_inputs(self, params, input_context=None) -> tf.data.Dataset:
    return pipelines.build_dataset(params, input_context)

  def build_metrics(self, training: bool = True):
    return [tf_keras.metrics.Mean(n) for n in LOSS_METRICS] + (
        _accuracy_metrics())

  def _losses(self, model, labels, logits):
    classification = tf.reduce_mean(
        tf_keras.losses.categorical_crossentropy(
            tf.one_hot(labels, logits.shape[-1]), logits, from_logits=True,
            label_smoothing=self.task_config.label_smoothing))
    regularization = losses.weight_decay_loss(
        model.trainable_variables, self.task_config.l2_weight_decay)
    return {'total_loss': classification + regularization,
            'classification_loss': classification,
            'regularization_loss': regularization}

  def _loss_and_grads(self, model, optimizer, images, labels):
    def forward():
      logits = model(images, training=True)
      return {**self._losses(model, labels, logits),
              'probs': tf.nn.softmax(logits)}
    logs, grads = gradients.replica_loss_and_grads(
        forward, optimizer, lambda: model.trainable_variables)
    return logs, grads, logs.pop('probs')

  def train_step(self, inputs, model, optimizer, metrics=None):
    logs, grads, probs = self._grads_fn(model, optimizer, inputs['image'],
                                        inputs['label'])
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return self._update_metrics(logs, inputs['label'], probs, metrics)

  def predict_videos(self, model, images: tf.Tensor) -> tf.Tensor:
    """[B, V, T, H, W, 3] (or one view [B, T, H, W, 3]) -> [B, C] probs."""
    folded, num_views = evaluation.fold_views(images)
    logits = model(folded, training=False)
    return evaluation.average_view_probabilities(logits, num_views)

  def validation_step(self, inputs, model, metrics=None):
    labels = inputs['label']
    probs = self.predict_videos(model, inputs['image'])
    picked = tf.gather(probs, labels, batch_dims=1)
    classification = -tf.reduce_mean(tf.math.log(tf.maximum(picked, 1e-12)))
    regularization = losses.weight_decay_loss(
        model.trainable_variables, self.task_config.l2_weight_decay)
    logs = {'total_loss': classification + regularization,
            'classification_loss': classification,
            'regularization_loss': regularization}
    return self._update_metrics(logs, labels, probs, metrics)

  def _update_metrics(self, logs, labels, probs, metrics):
    out = {self.loss: logs['total_loss']}
    for metric in metrics or []:
      if metric.name in logs:
        metric.update_state(logs[metric.name])
      else:
        metric.update_state(labels, probs)
      out[metric.name] = metric.result()
    return out

  def inference_step(self, inputs, model):
    return self.predict_videos(model, inputs)
