"""ImageNet-inflated R3D (paper 4.2 baseline; Carreira & Zisserman 2017).

A 2D ResNet's weights become the R3D's: every 2D kernel [h, w, c, f] is
repeated over the 3D kernel's temporal size t and divided by t ('mean'),
so a clip of identical frames gives every convolution the 2D response.
Batch norm and other weights are copied. 'center' puts the whole 2D kernel
on the middle temporal tap instead.

Sources:
- the R3D's 2D twin (`r3d.build_resnet2d_twin`, same layer names): a
  tf_keras weights file (.h5 / .weights.h5) or a TF checkpoint of it;
- `tf_keras.applications.ResNet50` weights (the usual ImageNet file,
  `resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5`), mapped layer by
  layer onto the twin (`keras_applications_to_twin`);
- a SimCLR checkpoint (google-research/simclr's released `model.ckpt-*`,
  v1 and v2, any depth and width without selective kernels), mapped onto
  the twin by creation order (`simclr_to_twin`): the paper's
  "SimCLR inflated" baseline of Table 5.

Invariant (tested): with 'mean', where the temporal zero padding does not
reach (all time steps when every temporal kernel is 1, the middle ones of a
long clip otherwise), the 3D network's features on a clip of identical
frames equal the 2D network's on that frame; with 'center' at every step.
"""

import re
from typing import Dict, List

import numpy as np
import tensorflow as tf
import tf_keras

from cvrl.configs import modeling as modeling_cfg

INFLATION_MODES = ('mean', 'center')


class InflationError(ValueError):
  """The 2D weights do not fit the 3D network; names the layer."""


def _weighted_layers(model: tf_keras.Model) -> Dict[str, tf_keras.layers.Layer]:
  return {layer.name: layer for layer in model.layers if layer.weights}


def inflate_kernel(kernel_2d: np.ndarray, temporal_size: int,
                   mode: str = 'mean') -> np.ndarray:
  """[h, w, c, f] -> [t, h, w, c, f]."""
  if mode == 'mean':
    return np.repeat(kernel_2d[None], temporal_size, axis=0) / temporal_size
  if mode == 'center':
    out = np.zeros((temporal_size,) + kernel_2d.shape, kernel_2d.dtype)
    out[temporal_size // 2] = kernel_2d
    return out
  raise InflationError(f'mode={mode!r}: expected one of {INFLATION_MODES}')


def inflate_weights(model_2d: tf_keras.Model, model_3d: tf_keras.Model,
                    mode: str = 'mean') -> int:
  """Sets model_3d's weights from its 2D twin's; returns weights set.

  Every weighted layer of either model must have its namesake in the other
  with the same weights (up to the temporal axis), else InflationError.
  """
  source = _weighted_layers(model_2d)
  target = _weighted_layers(model_3d)
  missing = [name for name in target if name not in source]
  unused = [name for name in source if name not in target]
  if missing or unused:
    raise InflationError(
        f'2D and 3D layers differ: 3D layers without a 2D source '
        f'{missing[:5]}, 2D layers without a 3D target {unused[:5]}; is the '
        '2D model the twin of this depth and width?')
  count = 0
  for name, layer in target.items():
    values = []
    for variable, value in zip(layer.weights, source[name].get_weights()):
      shape = tuple(variable.shape)
      if len(shape) == 5 and value.ndim == 4 and shape[1:] == value.shape:
        value = inflate_kernel(value, shape[0], mode)
      if tuple(value.shape) != shape:
        raise InflationError(
            f'layer {name}: 3D weight {variable.name} has shape {shape}, the '
            f'2D weight gives {tuple(value.shape)}')
      values.append(value)
    layer.set_weights(values)
    count += len(values)
  return count


def _keras_app_names(twin_name: str) -> str:
  """Twin layer name -> tf_keras.applications.ResNet50 layer name."""
  if twin_name.startswith('stem_'):
    return {'stem_conv': 'conv1_conv', 'stem_bn': 'conv1_bn'}[twin_name]
  stage, rest = twin_name[3:].split('_', 1)       # 'res3_1_b_bn' -> '3', ...
  block, part = rest.split('_', 1)
  index = {'proj': 0, 'a': 1, 'b': 2, 'c': 3}[part.split('_')[0]]
  kind = 'bn' if part.endswith('bn') else 'conv'
  return f'conv{stage}_block{int(block) + 1}_{index}_{kind}'


def keras_applications_to_twin(app_model: tf_keras.Model,
                               twin: tf_keras.Model) -> int:
  """Copies tf_keras.applications.ResNet50 weights into the R3D-50's twin.

  Keras's convolutions have biases and its BN epsilon is 1.001e-5; both are
  folded into the following BN exactly (moving mean - bias, variance +
  epsilon difference). Not folded, because the architectures differ: Keras
  ResNet50 is v1 (stride in the first 1x1 conv of a stage, explicit
  symmetric padding), the twin v1.5 like the paper's R3D, so the twin is
  close to, not identical with, the Keras network.
  """
  app_layers = _weighted_layers(app_model)
  count = 0
  for name, layer in _weighted_layers(twin).items():
    if name.endswith('_bn') or name == 'stem_bn':
      continue
    conv_name = _keras_app_names(name)
    bn_name = conv_name[:-4] + 'bn'
    if conv_name not in app_layers or bn_name not in app_layers:
      raise InflationError(f'twin layer {name}: no {conv_name} / {bn_name} in '
                           f'{app_model.name}')
    kernel, bias = app_layers[conv_name].get_weights()
    gamma, beta, mean, variance = app_layers[bn_name].get_weights()
    twin_bn = twin.get_layer('stem_bn' if name == 'stem_conv' else name + '_bn')
    epsilon_gap = app_layers[bn_name].epsilon - twin_bn.epsilon
    if kernel.shape != tuple(layer.weights[0].shape):
      raise InflationError(
          f'twin layer {name} has kernel {tuple(layer.weights[0].shape)}, '
          f'{conv_name} has {kernel.shape}; only depth 50, width 1 maps')
    layer.set_weights([kernel])
    twin_bn.set_weights([gamma, beta, mean - bias, variance + epsilon_gap])
    count += 5
  return count


SIMCLR_PREFIX = 'base_model/'


def _numbered(names: List[str], prefix: str, layer: str,
              leaf: str) -> List[str]:
  """TF1 layer scopes `layer`, `layer_1`, `layer_2`, ... in creation order."""
  pattern = re.compile(re.escape(prefix) + re.escape(layer) +
                       r'(?:_(\d+))?/' + re.escape(leaf) + '$')
  found = []
  for name in names:
    match = pattern.match(name)
    if match:
      found.append((int(match.group(1) or 0), name[:-len(leaf) - 1]))
  return [scope for _, scope in sorted(found)]


def twin_conv_order(depth: int) -> List[str]:
  """The twin's convolutions in the order a SimCLR ResNet creates them:
  stem, then per block the projection shortcut (first block of a stage)
  and the 1x1, 3x3, 1x1 convolutions."""
  order = ['stem_conv']
  for stage, count in enumerate(modeling_cfg.BLOCK_COUNTS[depth]):
    for block in range(count):
      name = f'res{stage + 2}_{block}'
      order += ([f'{name}_proj'] if block == 0 else []) + [
          f'{name}_a', f'{name}_b', f'{name}_c']
  return order


def simclr_to_twin(checkpoint: str, twin: tf_keras.Model, depth: int,
                   prefix: str = SIMCLR_PREFIX) -> int:
  """Copies a SimCLR (TF1-layers) ResNet checkpoint into the R3D's twin.

  SimCLR names its variables by creation order (`base_model/conv2d_7/kernel`,
  `base_model/batch_normalization_7/gamma`, ...), every convolution followed
  by its batch norm; it is v1.5 like the twin, without conv biases, BN
  epsilon 1e-5. Its stride-2 convolutions pad explicitly ((k-1)//2 before)
  where the twin pads 'same' (one pixel less before on even sizes), so the
  features are close to, not identical with, SimCLR's. `prefix`:
  'base_model/' (or 'ema_model/base_model/' for SimCLR v2's EMA weights).
  """
  reader = tf.train.load_checkpoint(checkpoint)
  names = list(reader.get_variable_to_shape_map())
  convs = _numbered(names, prefix, 'conv2d', 'kernel')
  norms = _numbered(names, prefix, 'batch_normalization', 'gamma')
  order = twin_conv_order(depth)
  if len(convs) != len(order) or len(norms) != len(order):
    raise InflationError(
        f'{checkpoint}: {len(convs)} convolutions and {len(norms)} batch norms '
        f'under {prefix!r}, the depth-{depth} twin has {len(order)} of each; '
        'is it a SimCLR ResNet of that depth (selective-kernel checkpoints, '
        'sk1, are not supported)?')
  for twin_name, conv_scope, norm_scope in zip(order, convs, norms):
    kernel = reader.get_tensor(conv_scope + '/kernel')
    layer = twin.get_layer(twin_name)
    if kernel.shape != tuple(layer.kernel.shape):
      raise InflationError(
          f'twin layer {twin_name} has kernel {tuple(layer.kernel.shape)}, '
          f'{conv_scope} has {kernel.shape}; is the width multiplier right?')
    layer.set_weights([kernel])
    norm = twin.get_layer('stem_bn' if twin_name == 'stem_conv'
                          else twin_name + '_bn')
    norm.set_weights([reader.get_tensor(f'{norm_scope}/{leaf}') for leaf in
                      ('gamma', 'beta', 'moving_mean', 'moving_variance')])
  return 5 * len(order)
