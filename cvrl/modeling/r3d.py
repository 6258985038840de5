"""3D-ResNets of CVRL (paper Table 1): the Slow pathway of SlowFast.

  stem   conv 5x7x7, 64w, stride (2, 2, 2) -> BN -> ReLU -> max pool 1x3x3 /2
  res2   [1x1x1 64w, 1x3x3 64w, 1x1x1 256w] x n2
  res3   [1x1x1 128w, 1x3x3 128w, 1x1x1 512w] x n3, spatial stride 2
  res4   [3x1x1 256w, 1x3x3 256w, 1x1x1 1024w] x n4, spatial stride 2
  res5   [3x1x1 512w, 1x3x3 512w, 1x1x1 2048w] x n5, spatial stride 2
  global average pooling -> [B, 2048w]

The temporal stride 2 'data layer' of the paper is the input pipeline's frame
stride. Every layer's filters are multiplied by the width multiplier w.
Registered with Model Garden's backbone factory as 'cvrl_r3d'.
"""

from typing import Optional

import tensorflow as tf
import tf_keras

from official.vision.modeling.backbones import factory

from cvrl.configs import modeling as modeling_cfg
from cvrl.modeling import tap_conv3d

_STAGE_FILTERS = (64, 128, 256, 512)
_STAGE_STRIDES = (1, 2, 2, 2)
# The layer that turns frames into the encoder's input, by `input_frames`
# (its name tells a built model's input: `checkpoint_restore`).
INPUT_LAYERS = {'difference': 'frame_difference',
                'rgb_and_difference': 'frames_and_difference'}


class FrameDifference(tf_keras.layers.Layer):
  """[B, T, H, W, C] -> [B, T - 1, H, W, C]: x[t + 1] - x[t] (residual
  frames; `R3DConfig.input_frames`)."""

  def call(self, clips):
    return clips[:, 1:] - clips[:, :-1]


class FramesAndDifference(tf_keras.layers.Layer):
  """[B, T, H, W, C] -> [B, T - 1, H, W, 2C]: x[t + 1] beside
  x[t + 1] - x[t] on the channel axis (`input_frames: rgb_and_difference`):
  what moves, from the residual, and what it looks like, from the frame."""

  def call(self, clips):
    return tf.concat([clips[:, 1:], clips[:, 1:] - clips[:, :-1]], axis=-1)


def _norm(norm, name, zero_gamma=False):
  return norm(name=name, gamma_initializer='zeros' if zero_gamma else 'ones')


class _Layers3D:
  """Conv and pooling layers of the video network; sizes are (t, h, w)."""
  conv = tf_keras.layers.Conv3D
  max_pool = tf_keras.layers.MaxPool3D
  global_pool = tf_keras.layers.GlobalAveragePooling3D

  @staticmethod
  def stem_conv(*args, **kwargs):
    # On CPUs the stem's filter gradient (3 input channels) can take 50-100x
    # longer as a Conv3D than as 2D convolutions over its temporal taps
    # (tap_conv3d says where); same weights either way.
    if tap_conv3d.accelerator_visible():
      return tf_keras.layers.Conv3D(*args, **kwargs)
    return tap_conv3d.TapConv3D(*args, **kwargs)

  @staticmethod
  def size(thw):
    return tuple(thw)


class _Layers2D:
  """The same network on images: every (t, h, w) loses its t. Used as the
  2D twin whose ImageNet weights `inflation` turns into the 3D network."""
  conv = stem_conv = tf_keras.layers.Conv2D
  max_pool = tf_keras.layers.MaxPool2D
  global_pool = tf_keras.layers.GlobalAveragePooling2D

  @staticmethod
  def size(thw):
    return tuple(thw[1:])


def _conv(ops, filters, kernel, strides, regularizer, name, dilation=1,
          layer=None):
  return (layer or ops.conv)(
      filters, ops.size(kernel), strides=ops.size(strides), padding='same',
      dilation_rate=ops.size((1, dilation, dilation)), use_bias=False,
      kernel_initializer=tf_keras.initializers.VarianceScaling(
          2.0, mode='fan_out', distribution='untruncated_normal'),
      kernel_regularizer=regularizer, name=name)


def _bottleneck(ops, x, filters, temporal_kernel, stride, norm, activation,
                regularizer, zero_init, name, dilation=1):
  """Bottleneck block; the spatial stride (or dilation) sits in the 1x3x3
  conv (v1.5)."""
  out_filters = 4 * filters
  shortcut = x
  if x.shape[-1] != out_filters or stride != 1:
    shortcut = _conv(ops, out_filters, (1, 1, 1), (1, stride, stride),
                     regularizer, f'{name}_proj')(x)
    shortcut = _norm(norm, f'{name}_proj_bn')(shortcut)
  y = _conv(ops, filters, (temporal_kernel, 1, 1), (1, 1, 1), regularizer,
            f'{name}_a')(x)
  y = activation(_norm(norm, f'{name}_a_bn')(y))
  y = _conv(ops, filters, (1, 3, 3), (1, stride, stride), regularizer,
            f'{name}_b', dilation)(y)
  y = activation(_norm(norm, f'{name}_b_bn')(y))
  y = _conv(ops, out_filters, (1, 1, 1), (1, 1, 1), regularizer,
            f'{name}_c')(y)
  y = _norm(norm, f'{name}_c_bn', zero_gamma=zero_init)(y)
  return activation(tf_keras.layers.Add(name=f'{name}_add')([shortcut, y]))


def build_r3d(config: modeling_cfg.R3DConfig,
              input_shape=(None, None, None, 3),
              use_sync_bn: bool = False, norm_momentum: float = 0.9,
              norm_epsilon: float = 1e-5,
              kernel_regularizer=None, name: Optional[str] = None
              ) -> tf_keras.Model:
  """The R3D backbone: [B, T, H, W, 3] -> pooled features [B, 2048w].

  The model's output is the pooled feature; `model.endpoints` also holds
  the stage outputs ('res2'..'res5') for detection or dense heads.
  """
  return _build_resnet(_Layers3D, config, input_shape, use_sync_bn,
                       norm_momentum, norm_epsilon, kernel_regularizer,
                       name or f'r3d{config.depth}_w{config.width_multiplier:g}',
                       input_name='video')


def build_resnet2d_twin(config: modeling_cfg.R3DConfig,
                        input_shape=(None, None, 3), norm_epsilon=1e-5,
                        name: Optional[str] = None) -> tf_keras.Model:
  """The 2D ResNet with the R3D's layers, names and conventions (v1.5,
  'same' padding, no conv bias): [B, H, W, 3] -> [B, 2048w]. Its weights
  (e.g. from ImageNet) inflate exactly into `build_r3d(config)`."""
  return _build_resnet(_Layers2D, config, input_shape, False, 0.9,
                       norm_epsilon, None,
                       name or f'resnet{config.depth}_2d_w'
                       f'{config.width_multiplier:g}', input_name='image')


def _build_resnet(ops, config, input_shape, use_sync_bn, norm_momentum,
                  norm_epsilon, kernel_regularizer, name, input_name):
  config.validate()
  width = config.width_multiplier

  def norm(**kwargs):
    return tf_keras.layers.BatchNormalization(
        momentum=norm_momentum, epsilon=norm_epsilon,
        synchronized=use_sync_bn, **kwargs)

  relu = tf_keras.layers.Activation('relu')
  inputs = tf_keras.Input(shape=input_shape, name=input_name)
  x = inputs
  if config.input_frames != 'rgb':
    if ops is not _Layers3D:
      raise ValueError(f'input_frames={config.input_frames!r} needs frames: '
                       "the 2D twin takes images; use input_frames='rgb'")
    layer = (FrameDifference if config.input_frames == 'difference' else
             FramesAndDifference)
    x = layer(name=INPUT_LAYERS[config.input_frames])(x)
  x = _conv(ops, int(64 * width), (config.stem_temporal_kernel, 7, 7),
            (config.stem_temporal_stride, 2, 2), kernel_regularizer,
            'stem_conv', layer=ops.stem_conv)(x)
  x = relu(norm(name='stem_bn')(x))
  x = ops.max_pool(ops.size((1, 3, 3)), ops.size((1, 2, 2)), padding='same',
                   name='stem_pool')(x)
  endpoints = {}
  blocks = modeling_cfg.BLOCK_COUNTS[config.depth]
  for stage, (num_blocks, filters, stride, t_kernel) in enumerate(zip(
      blocks, _STAGE_FILTERS, _STAGE_STRIDES,
      config.stage_temporal_kernels)):
    dilation = 1
    if stage == 3 and config.res5_dilation > 1:
      # Detection (SlowFast's AVA model): res5 keeps res4's resolution and
      # sees as far by dilation; the weights are the same shapes.
      stride, dilation = 1, config.res5_dilation
    for block in range(num_blocks):
      x = _bottleneck(ops, x, int(filters * width), t_kernel,
                      stride if block == 0 else 1, norm, relu,
                      kernel_regularizer, config.zero_init_residual,
                      name=f'res{stage + 2}_{block}', dilation=dilation)
    endpoints[f'res{stage + 2}'] = x
  features = ops.global_pool(name='pool')(x)
  model = tf_keras.Model(inputs, features, name=name)
  model.endpoints = endpoints
  return model


def feature_dim(config: modeling_cfg.R3DConfig) -> int:
  return 4 * int(_STAGE_FILTERS[-1] * config.width_multiplier)


@factory.register_backbone_builder('cvrl_r3d')
def build_r3d_from_factory(input_specs, backbone_config, norm_activation_config,
                           l2_regularizer=None, **unused_kwargs):
  """Model Garden backbone factory entry: `backbone.type: cvrl_r3d`."""
  if backbone_config.type != 'cvrl_r3d':
    raise ValueError(f'backbone.type={backbone_config.type!r}: this builder '
                     "makes 'cvrl_r3d'")
  shape = tuple(input_specs.shape[1:]) if input_specs.shape else (None,) * 4
  return build_r3d(backbone_config.get(), input_shape=shape,
                   use_sync_bn=norm_activation_config.use_sync_bn,
                   norm_momentum=norm_activation_config.norm_momentum,
                   norm_epsilon=norm_activation_config.norm_epsilon,
                   kernel_regularizer=l2_regularizer)


def count_params(model: tf_keras.Model) -> int:
  """All weights, BN moving statistics included, as TF counts them.

  This is what paper Table 2 reports (R3D-50 31.7M, R3D-101 59.7M,
  R3D-152 2x 328.0M); trainable weights alone give 59.6M for R3D-101.
  """
  return int(model.count_params())
