"""Video classification task: linear evaluation, fine-tuning, supervised.

On the shared `video_task.VideoTask` loop. train_step: one clip per video, softmax cross-entropy (+ weight decay), the
per-replica loss divided by the number of replicas. validation_step: every
view of a test video through the model, softmax averaged over the views,
top-1 / top-5 of the averaged prediction (paper 4.1: 10 clips x 3 crops).

initialize (called by the trainer when model_dir has no checkpoint of its
own): restores the backbone from `init_checkpoint` after checking every
variable against it; `random_backbone` is the only way to start from
random weights.
"""

from typing import Dict

import tensorflow as tf
import tf_keras

from official.core import task_factory

from cvrl.eval import multiview
from cvrl.configs import classification as classification_cfg
from cvrl.modeling import classifier
from cvrl.tasks import video_task

LOSS_METRICS = ('classification_loss', 'regularization_loss')


def _accuracy_metrics():
  return [tf_keras.metrics.SparseCategoricalAccuracy('top_1_accuracy'),
          tf_keras.metrics.SparseTopKCategoricalAccuracy(
              k=5, name='top_5_accuracy')]


@task_factory.register_task_cls(classification_cfg.ClassificationTaskConfig)
class ClassificationTask(video_task.VideoTask):
  """Supervised video classification on an R3D backbone."""

  def make_model(self) -> classifier.VideoClassifier:
    return classifier.build_classifier(self.task_config)

  def initialize(self, model: classifier.VideoClassifier) -> None:
    self.restore_pretrained_backbone(model.backbone)

  @property
  def weight_decay(self) -> float:
    return self.task_config.l2_weight_decay

  def forward(self, model, inputs, training: bool) -> Dict[str, tf.Tensor]:
    """Training: one clip a video, {'logits', 'probs'}. Evaluation: every
    view of a video, {'probs'} averaged over the views."""
    if training:
      logits = model(inputs['image'], training=True)
      return {'logits': logits, 'probs': tf.nn.softmax(logits)}
    return {'probs': self.predict_videos(model, inputs['image'])}

  def build_losses(self, labels, model_outputs,
                   aux_losses=None) -> Dict[str, tf.Tensor]:
    """Cross-entropy (+ weight decay): of the logits when training (with
    label smoothing), of the views' averaged probabilities in evaluation."""
    if 'logits' in model_outputs:
      logits = model_outputs['logits']
      classification = tf.reduce_mean(
          tf_keras.losses.categorical_crossentropy(
              tf.one_hot(labels, logits.shape[-1]), logits, from_logits=True,
              label_smoothing=self.task_config.label_smoothing))
    else:
      picked = tf.gather(model_outputs['probs'], labels, batch_dims=1)
      classification = -tf.reduce_mean(
          tf.math.log(tf.maximum(picked, 1e-12)))
    regularization = (tf.constant(0.0) if aux_losses is None
                      else tf.cast(aux_losses, tf.float32))
    return {video_task.TOTAL_LOSS: classification + regularization,
            'classification_loss': classification,
            'regularization_loss': regularization}

  def build_metrics(self, training: bool = True):
    return [tf_keras.metrics.Mean(n) for n in LOSS_METRICS] + (
        _accuracy_metrics())

  def process_metrics(self, metrics, labels, model_outputs, logs=None,
                      **kwargs):
    """Loss metrics from the loss parts, accuracies from the probabilities."""
    del kwargs
    for metric in metrics:
      if logs is not None and metric.name in logs:
        metric.update_state(logs[metric.name])
      else:
        metric.update_state(labels, model_outputs['probs'])

  def predict_videos(self, model, images: tf.Tensor) -> tf.Tensor:
    """[B, V, T, H, W, 3] (or one view [B, T, H, W, 3]) -> [B, C] probs."""
    folded, num_views = multiview.fold_views(images)
    logits = model(folded, training=False)
    return multiview.average_view_probabilities(logits, num_views)

  def inference_step(self, inputs, model):
    return self.predict_videos(model, inputs)
