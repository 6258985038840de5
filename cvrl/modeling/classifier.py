"""A video classifier on an R3D backbone, for every evaluation protocol.

  video [B, T, H, W, 3] -> backbone -> [B, 2048w] -> (l2-normalise)
        -> (parameter-free batch norm) -> dropout -> linear
        -> logits [B, num_classes] (float32)

With `freeze_backbone` the backbone is not trainable and always runs in
inference mode, so neither its weights nor its batch-norm statistics move
(linear evaluation). `checkpoint_items` exposes the backbone, so the trainer's
checkpoints can be restored by any other protocol or by export_features.
"""

import tensorflow as tf
import tf_keras

from cvrl.configs import classification as classification_cfg
from cvrl.modeling import cvrl_model


class VideoClassifier(tf_keras.Model):
  """Backbone + (normalise) + dropout + linear layer."""

  def __init__(self, backbone: tf_keras.Model,
               head: classification_cfg.ClassifierHeadConfig,
               freeze_backbone: bool, kernel_regularizer=None, **kwargs):
    super().__init__(**kwargs)
    self.backbone = backbone
    self.freeze_backbone = freeze_backbone
    if freeze_backbone:
      backbone.trainable = False
    self.normalize_features = head.normalize_features
    self.feature_bn = (tf_keras.layers.BatchNormalization(
        center=False, scale=False, momentum=0.9, epsilon=1e-6,
        dtype='float32', name='feature_bn')
                       if head.batch_norm_features else None)
    self.dropout = tf_keras.layers.Dropout(head.dropout_rate, name='dropout')
    # float32 logits under mixed precision; small init as SlowFast's head.
    self.classifier = tf_keras.layers.Dense(
        head.num_classes, dtype='float32',
        kernel_initializer=tf_keras.initializers.RandomNormal(stddev=0.01),
        kernel_regularizer=kernel_regularizer, name='logits')

  def call(self, inputs, training=None):
    backbone_training = False if self.freeze_backbone else training

    def features_of():
      return tf.cast(self.backbone(inputs, training=backbone_training),
                     tf.float32)
    if inputs.shape[0] is None:
      # A multi-replica evaluation's last batch can leave a replica with no
      # clip, and TF's CPU Conv3D returns an empty input unchanged (3
      # channels), which then fails in the first batch norm.
      features = tf.cond(
          tf.shape(inputs)[0] > 0, features_of,
          lambda: tf.zeros([0, self.backbone.output_shape[-1]]))
    else:
      features = features_of()
    if self.normalize_features:
      features = tf.math.l2_normalize(features, axis=-1)
    if self.feature_bn is not None:
      features = self.feature_bn(features, training=training)
    return self.classifier(self.dropout(features, training=training))

  @property
  def checkpoint_items(self):
    return {'backbone': self.backbone}


def build_classifier(task: classification_cfg.ClassificationTaskConfig,
                     kernel_regularizer=None) -> VideoClassifier:
  """The classifier of a task config; spatial size is left open so training
  crops and larger test views go through the same model."""
  data = task.train_data
  input_shape = (data.num_frames, None, None, 3)
  backbone = cvrl_model.build_backbone(task.model, input_shape,
                                       kernel_regularizer)
  model = VideoClassifier(backbone, task.model.head, task.freeze_backbone,
                          kernel_regularizer, name='video_classifier')
  model(tf_keras.Input(shape=(data.num_frames, data.crop_size, data.crop_size,
                              3)))
  return model
