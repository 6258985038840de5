"""The CVRL pretraining model: R3D backbone + projection head.

  video [B, T, H, W, 3] -> backbone -> 'features' [B, 2048w]
                        -> projection head -> 'embeddings' [B, 128]

Only the backbone is kept after pretraining: `checkpoint_items` exposes it so
evaluation tasks restore exactly the encoder.
"""

from typing import Optional

import tf_keras

from official.vision.modeling.backbones import factory

from cvrl.configs import modeling as modeling_cfg
from cvrl.modeling import r3d  # pylint: disable=unused-import  (registers 'cvrl_r3d')  # noqa: F401


def build_projection_head(config: modeling_cfg.ProjectionHeadConfig,
                          input_dim: int, norm_activation,
                          kernel_regularizer=None,
                          name: str = 'projection_head') -> tf_keras.Sequential:
  """num_hidden_layers x (Dense + BN + ReLU), then Dense(output_dim)."""
  hidden = config.hidden_dim or input_dim
  layers = []
  for i in range(config.num_hidden_layers):
    layers += [
        # No bias: the BN right after it has one.
        tf_keras.layers.Dense(hidden, use_bias=False,
                              kernel_regularizer=kernel_regularizer,
                              name=f'hidden_{i}'),
        tf_keras.layers.BatchNormalization(
            momentum=norm_activation.norm_momentum,
            epsilon=norm_activation.norm_epsilon,
            synchronized=norm_activation.use_sync_bn, name=f'hidden_{i}_bn'),
        tf_keras.layers.Activation('relu', name=f'hidden_{i}_relu'),
    ]
  layers.append(tf_keras.layers.Dense(config.output_dim,
                                      kernel_regularizer=kernel_regularizer,
                                      name='output'))
  return tf_keras.Sequential(layers, name=name)


class CVRLModel(tf_keras.Model):
  """Backbone plus projection head; returns {'features', 'embeddings'}."""

  def __init__(self, backbone: tf_keras.Model, head: tf_keras.Model, **kwargs):
    super().__init__(**kwargs)
    self.backbone = backbone
    self.head = head

  def call(self, inputs, training=None):
    features = self.backbone(inputs, training=training)
    return {'features': features,
            'embeddings': self.head(features, training=training)}

  @property
  def checkpoint_items(self):
    return {'backbone': self.backbone}


def build_backbone(config: modeling_cfg.EncoderConfig, input_shape,
                   kernel_regularizer=None) -> tf_keras.Model:
  """The configured backbone, through Model Garden's backbone factory
  (`config`: any model config, they all extend EncoderConfig)."""
  config.validate()
  specs = tf_keras.layers.InputSpec(shape=(None,) + tuple(input_shape))
  return factory.build_backbone(
      input_specs=specs, backbone_config=config.backbone,
      norm_activation_config=config.norm_activation,
      l2_regularizer=kernel_regularizer)


def build_cvrl_model(config: modeling_cfg.CVRLModelConfig, input_shape,
                     kernel_regularizer=None,
                     name: Optional[str] = 'cvrl') -> CVRLModel:
  """Backbone and head, built for inputs [B] + input_shape."""
  backbone = build_backbone(config, input_shape, kernel_regularizer)
  head = build_projection_head(config.projection_head,
                               backbone.output_shape[-1],
                               config.norm_activation, kernel_regularizer)
  model = CVRLModel(backbone, head, name=name)
  model(tf_keras.Input(shape=tuple(input_shape)))  # create the variables
  return model
