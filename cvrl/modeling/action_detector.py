"""The AVA action detector: R3D (res5 dilated) -> per-box action logits.

  clip [B, T, H, W, 3] -> R3D res5 [B, T', H/16, W/16, C]
  -> temporal average pool [B, H/16, W/16, C]
  -> RoIAlign 7x7 on the keyframe's boxes [B, N, 7, 7, C]
  -> spatial max pool [B, N, C] -> dropout -> linear -> [B, N, classes]

The paper's "3D RoIAlign then temporal average pooling" (SlowFast) equals
pooling first: RoIAlign is linear in the features and the box is the same
in every frame. RoIAlign is Model Garden's
`spatial_transform_ops.multilevel_crop_and_resize` with one level (one
bilinear sample at each bin centre, `sample_offset` 0.5), fed the res5 map
as pyramid level log2(output stride) so boxes in input pixels map onto it.
"""

import math
from typing import Dict

import tensorflow as tf
import tf_keras

from official.vision.ops import spatial_transform_ops

from cvrl.configs import detection as detection_cfg
from cvrl.modeling import cvrl_model


def roi_align(feature_map: tf.Tensor, boxes: tf.Tensor, image_size,
              output_stride: int, output_size: int = 7) -> tf.Tensor:
  """[B, h, w, C] features, [B, N, 4] normalised (ymin, xmin, ymax, xmax)
  boxes -> [B, N, output_size, output_size, C]."""
  height, width = image_size
  scale = tf.constant([height, width, height, width], boxes.dtype)
  level = int(round(math.log2(output_stride)))
  if 2 ** level != output_stride:
    raise ValueError(f'output_stride={output_stride}: expected a power of 2')
  return spatial_transform_ops.multilevel_crop_and_resize(
      {str(level): feature_map}, boxes * scale, output_size=output_size)


class ActionDetector(tf_keras.Model):
  """Per-box multi-label action logits from a clip and its keyframe boxes.

  `backbone` is the R3D classification backbone (restorable from
  pretraining checkpoints by `checkpoint_restore`); the detector reads its
  res5 endpoint.
  """

  def __init__(self, backbone: tf_keras.Model, num_classes: int,
               output_stride: int, roi_size: int = 7,
               dropout_rate: float = 0.5, **kwargs):
    super().__init__(**kwargs)
    self.backbone = backbone
    self._res5 = tf_keras.Model(backbone.inputs, backbone.endpoints['res5'],
                                name='res5_features')
    self._stride = output_stride
    self._roi_size = roi_size
    self._dropout = tf_keras.layers.Dropout(dropout_rate)
    self.classifier = tf_keras.layers.Dense(
        num_classes, name='action_logits',
        kernel_initializer=tf_keras.initializers.RandomNormal(stddev=0.01))

  def call(self, inputs: Dict[str, tf.Tensor], training=None) -> tf.Tensor:
    image, boxes = inputs['image'], inputs['boxes']
    features = self._res5(image, training=training)
    pooled = tf.reduce_mean(features, axis=1)
    regions = roi_align(tf.cast(pooled, tf.float32),
                        tf.cast(boxes, tf.float32), image.shape[2:4],
                        self._stride, self._roi_size)
    per_box = tf.reduce_max(regions, axis=[2, 3])
    return tf.cast(self.classifier(self._dropout(per_box, training=training)),
                   tf.float32)


def build_detector(task_config: detection_cfg.DetectionTaskConfig
                   ) -> ActionDetector:
  """The detector of `task_config.model`, built on its training frame size."""
  model_config = task_config.model
  data = task_config.train_data
  # Any clip size: training crops and test frames differ.
  backbone = cvrl_model.build_backbone(model_config, (None, None, None, 3))
  detector = ActionDetector(
      backbone, model_config.head.num_classes,
      model_config.backbone.cvrl_r3d.output_stride,
      model_config.head.roi_size, model_config.head.dropout_rate)
  height, width = data.frame_size
  detector({'image': tf.zeros([1, data.num_frames, height, width, 3]),
            'boxes': tf.zeros([1, 1, 4])})
  return detector
