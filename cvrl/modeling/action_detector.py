"""The AVA action detector: R3D (res5 dilated) -> per-box action logits.

  clip [B, T, H, W, 3] -> R3D res5 [B, T', H/16, W/16, C]
  -> temporal average pool [B, H/16, W/16, C]
  -> RoIAlign 7x7 on the keyframe's boxes [B, N, 7, 7, C]
  -> spatial max pool [B, N, C] -> dropout -> linear -> [B, N, classes]

The paper's "3D RoIAlign then temporal average pooling" (SlowFast) equals
pooling first: RoIAlign is linear in the features and the box is the same
in every frame. RoIAlign is Detectron2's aligned RoIAlign with adaptive sampling, the one
PySlowFast's AVA head uses (`roi_align`), written as two dense
contractions so it compiles with static shapes for TPUs.
"""

import math
from typing import Dict

from absl import logging
import tensorflow as tf
import tf_keras


from cvrl.configs import detection as detection_cfg
from cvrl.modeling import cvrl_model


def _bin_weights(start, size, length, output_size: int, grid: int):
  """[B, N, output_size, length] weights of one axis of aligned RoIAlign.

  start, size: [B, N] box start and extent on this axis, in feature cells,
  already shifted by Detectron2's aligned half-cell offset. Bin p averages
  n = ceil(size / output_size) samples (sampling_ratio=0) at start + (p +
  (i + 0.5) / n) * size / output_size, i < n; `grid` >= every box's n
  (static, for XLA), the samples past a box's n are masked. A sample reads
  its two neighbouring cells by linear interpolation (Detectron2's
  bilinear_interpolate on one axis: clamped to [0, length - 1], 0 when more
  than one cell outside the map).
  """
  bin_size = size / output_size
  count = tf.math.ceil(size / output_size)  # samples per bin, may be 0
  p = tf.range(output_size, dtype=start.dtype)
  i = tf.range(grid, dtype=start.dtype)
  position = (start[..., None, None] + p[:, None] * bin_size[..., None, None]
              + (i + 0.5) * (bin_size / tf.maximum(count, 1.0))[
                  ..., None, None])                       # [B, N, P, G]
  used = i < count[..., None, None]
  inside = (position >= -1.0) & (position <= tf.cast(length, start.dtype))
  clamped = tf.clip_by_value(position, 0.0,
                             tf.cast(length, start.dtype) - 1.0)
  cells = tf.range(length, dtype=start.dtype)
  tent = tf.nn.relu(1.0 - tf.abs(clamped[..., None] - cells))  # [B,N,P,G,L]
  weight = tent * tf.cast(used & inside, start.dtype)[..., None]
  return tf.reduce_sum(weight, axis=3) / tf.maximum(count, 1.0)[
      ..., None, None]


def roi_align(feature_map: tf.Tensor, boxes: tf.Tensor, image_size,
              output_stride: int, output_size: int = 7) -> tf.Tensor:
  """[B, h, w, C] features, [B, N, 4] normalised (ymin, xmin, ymax, xmax)
  boxes -> [B, N, output_size, output_size, C].

  Detectron2's ROIAlign(aligned=True, sampling_ratio=0), as PySlowFast's
  AVA head uses it: boxes in input pixels scaled by 1 / output_stride and
  shifted by half a cell, each bin the mean of ceil(roi / bin) x ceil(roi /
  bin) bilinear samples. Bilinear sampling and the mean are separable, so
  the op is two dense contractions with per-axis weight matrices
  (`_bin_weights`): static shapes, no gathers, XLA/TPU friendly.
  """
  height, width = image_size
  map_h, map_w = feature_map.shape[1], feature_map.shape[2]
  if map_h is None or map_w is None:
    raise ValueError('roi_align needs a feature map of static height and '
                     f'width, got {feature_map.shape}')
  boxes = tf.cast(boxes, feature_map.dtype)
  cells = boxes * tf.constant([height, width, height, width],
                              feature_map.dtype) / output_stride - 0.5
  y1, x1, y2, x2 = tf.unstack(cells, axis=-1)
  grid_h = max(1, math.ceil(map_h / output_size))
  grid_w = max(1, math.ceil(map_w / output_size))
  rows = _bin_weights(y1, y2 - y1, map_h, output_size, grid_h)
  cols = _bin_weights(x1, x2 - x1, map_w, output_size, grid_w)
  per_row = tf.einsum('bnpr,brwc->bnpwc', rows, feature_map)
  return tf.einsum('bnqw,bnpwc->bnpqc', cols, per_row)


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


def freeze_for_fine_tuning(backbone: tf_keras.Model, fine_tune_from: str,
                           batch_norm: str) -> list:
  """Marks the backbone layers fine-tuning must not train; their names.

  Layers of the stages before `fine_tune_from` (named '<stage>_...' by
  `r3d`), and with batch_norm='frozen' every BN layer. A Keras BN layer
  that is not trainable runs in inference mode even in a training step, so
  a frozen BN keeps normalising with its initial statistics and never
  updates them.
  """
  stages = detection_cfg.FINE_TUNE_FROM
  if fine_tune_from not in stages:
    raise ValueError(f'task.fine_tune_from={fine_tune_from!r}: expected one '
                     f'of {stages}')
  frozen_stages = set(stages[:stages.index(fine_tune_from)])
  frozen = []
  for layer in backbone.layers:
    is_norm = isinstance(layer, tf_keras.layers.BatchNormalization)
    if (layer.name.split('_')[0] in frozen_stages
        or (batch_norm == 'frozen' and is_norm)):
      if layer.weights:
        layer.trainable = False
        frozen.append(layer.name)
  return frozen


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
  frozen = freeze_for_fine_tuning(backbone, task_config.fine_tune_from,
                                  task_config.backbone_batch_norm)
  if frozen:
    logging.info('fine_tune_from=%s, backbone_batch_norm=%s: %d backbone '
                 'layers frozen (%s ... %s)', task_config.fine_tune_from,
                 task_config.backbone_batch_norm, len(frozen), frozen[0],
                 frozen[-1])
  height, width = data.frame_size
  detector({'image': tf.zeros([1, data.num_frames, height, width, 3]),
            'boxes': tf.zeros([1, 1, 4])})
  return detector
