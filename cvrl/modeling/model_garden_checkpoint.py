"""Model Garden's video_ssl checkpoints, read into our R3D and written from it.

The authors released their CVRL encoders (`official/projects/video_ssl`:
R3D-50 inflated from ImageNet, K400 200 / 800 epochs, K600 800 epochs) as
`tf.train.Checkpoint(backbone=ResNet3D(...))` of Model Garden's
`official.vision.modeling.backbones.resnet_3d.ResNet3D`. The network is the
same as ours (`r3d.build_r3d`, depth 50, width 1, temporal kernels
1 / 1 / 3 / 3 per stage, stem 5 x 7 x 7 at temporal stride 2, stem pool at
temporal stride 1); its checkpoint keys are not:

  <root>/layer_with_weights-0/kernel           our stem_conv/kernel
  <root>/layer_with_weights-1/{gamma,...}      our stem_bn
  <root>/layer_with_weights-{2 + k}/           bottleneck k in network order:
      _shortcut_conv, _norm0                   res{s}_{b}_proj, _proj_bn
      _temporal_conv, _norm1                   res{s}_{b}_a,    _a_bn
      _spatial_conv,  _norm2                   res{s}_{b}_b,    _b_bn
      _expand_conv,   _norm3                   res{s}_{b}_c,    _c_bn

<root> is 'backbone' in the release's backbone-only files and in the model
dirs of Model Garden training runs (their trainer saves the model's
`checkpoint_items`, {'backbone': ...}, at the top); anything else that
holds the same structure (e.g. 'model/_backbone') is found too. Files may
also hold `_shortcut_conv` / `_norm0` of blocks whose shortcut is the
identity (unused by Model Garden's block): they are accepted when they have
the identity's shapes, and written by `save`, so that any Model Garden
version that builds them finds them.

The format is recognised from the checkpoint's keys. Every variable of our
backbone is matched to a key by this structure and by shape before anything
is restored; a key of the file that no variable takes (another depth, a
self-gating or squeeze-excitation block, a 2D checkpoint) stops the restore
naming it. What shapes cannot show (temporal strides, the stem pool's
stride) is checked against the Model Garden run's params.yaml where there
is one; the release's own files follow the specs above.
"""

import dataclasses
import os
import re
from typing import Dict, List, Optional, Tuple

import tensorflow as tf
import tf_keras

from official.modeling.hyperparams import params_dict

from cvrl.modeling import r3d

_SUFFIX = '/.ATTRIBUTES/VARIABLE_VALUE'
_BLOCK_KEY = re.compile(r'^(.*)/layer_with_weights-(\d+)/_temporal_conv/kernel'
                        + re.escape(_SUFFIX) + '$')
_BN = ('gamma', 'beta', 'moving_mean', 'moving_variance')
# Our layer suffix -> Model Garden's sub-layer, per bottleneck.
_BLOCK_LAYERS = (('proj', '_shortcut_conv'), ('proj_bn', '_norm0'),
                 ('a', '_temporal_conv'), ('a_bn', '_norm1'),
                 ('b', '_spatial_conv'), ('b_bn', '_norm2'),
                 ('c', '_expand_conv'), ('c_bn', '_norm3'))
# What the release's backbone is, in Model Garden's ResNet3D terms.
RELEASE_STEM_POOL_TEMPORAL_STRIDE = 1


class FormatError(ValueError):
  """The checkpoint is Model Garden's, but not of the configured backbone."""


@dataclasses.dataclass
class Mapping:
  """Our backbone's variables by their Model Garden key (below `root`),
  and the identity-shortcut keys a file may hold unused, with shapes."""
  root: str
  variables: Dict[str, tf.Variable]
  unused_shortcuts: Dict[str, List[int]]


def _blocks(backbone: tf_keras.Model) -> List[str]:
  """Our bottleneck names in network order: ['res2_0', 'res2_1', ...]."""
  names = [layer.name[:-len('_a')] for layer in backbone.layers
           if re.fullmatch(r'res\d+_\d+_a', layer.name)]
  return sorted(names, key=lambda n: tuple(int(x) for x in
                                          re.findall(r'\d+', n)))


def _layer_or_none(backbone, name):
  try:
    return backbone.get_layer(name)
  except ValueError:
    return None


def mapping(backbone: tf_keras.Model, root: str = 'backbone') -> Mapping:
  """{Model Garden key: our variable} for an R3D of `r3d.build_r3d`."""
  if _layer_or_none(backbone, 'stem_conv') is None:
    raise FormatError(f'{backbone.name}: not an R3D of cvrl.modeling.r3d')
  variables = {}

  def add(prefix, layer):
    for weight in layer.weights:
      attribute = weight.name.split('/')[-1].split(':')[0]
      variables[f'{root}/{prefix}/{attribute}{_SUFFIX}'] = weight

  add('layer_with_weights-0', backbone.get_layer('stem_conv'))
  add('layer_with_weights-1', backbone.get_layer('stem_bn'))
  unused = {}
  for k, block in enumerate(_blocks(backbone)):
    prefix = f'layer_with_weights-{2 + k}'
    for ours, theirs in _BLOCK_LAYERS:
      layer = _layer_or_none(backbone, f'{block}_{ours}')
      if layer is not None:
        add(f'{prefix}/{theirs}', layer)
    if _layer_or_none(backbone, f'{block}_proj') is None:
      # The identity shortcut: Model Garden's block may still hold these.
      channels = backbone.get_layer(f'{block}_c').weights[0].shape[-1]
      unused[f'{root}/{prefix}/_shortcut_conv/kernel{_SUFFIX}'] = [
          1, 1, 1, channels, channels]
      for attribute in _BN:
        unused[f'{root}/{prefix}/_norm0/{attribute}{_SUFFIX}'] = [channels]
  return Mapping(root, variables, unused)


def backbone_root(checkpoint: str) -> Optional[str]:
  """The key prefix under which `checkpoint` holds a Model Garden ResNet3D
  ('backbone', ...), or None when it is not in that format (ours, or
  another model). Prefers 'backbone', then the shortest."""
  keys = tf.compat.v1.train.NewCheckpointReader(
      checkpoint).get_variable_to_shape_map()
  roots = {m.group(1) for m in map(_BLOCK_KEY.match, keys) if m}
  if not roots:
    return None
  if 'backbone' in roots:
    return 'backbone'
  return min(roots, key=lambda r: (r.count('/'), r))


def _stored(checkpoint: str, root: str) -> Dict[str, List[int]]:
  """The checkpoint's weights below `root` (no optimizer slots)."""
  shapes = tf.compat.v1.train.NewCheckpointReader(
      checkpoint).get_variable_to_shape_map()
  return {k: list(v) for k, v in shapes.items()
          if k.startswith(root + '/') and k.endswith(_SUFFIX)
          and '.OPTIMIZER_SLOT' not in k}


def _stored_layout(stored: Dict[str, List[int]], root: str
                   ) -> Tuple[List[int], Tuple[int, ...]]:
  """(layer indices of the checkpoint's blocks in order, blocks per stage:
  runs of blocks with the same output width)."""
  indices = sorted({int(m.group(2)) for m in map(_BLOCK_KEY.match, stored)
                    if m})
  widths = [stored.get(f'{root}/layer_with_weights-{i}/_expand_conv/kernel'
                       f'{_SUFFIX}', [0])[-1] for i in indices]
  stages = []
  for k, width in enumerate(widths):
    if k and width == widths[k - 1]:
      stages[-1] += 1
    else:
      stages.append(1)
  return indices, tuple(stages)


def _depth_name(stages) -> str:
  from cvrl.configs import modeling as modeling_cfg  # pylint: disable=g-import-not-at-top
  for depth, counts in modeling_cfg.BLOCK_COUNTS.items():
    if tuple(counts) == tuple(stages):
      return f'R3D-{depth}, blocks {"/".join(map(str, stages))}'
  return f'blocks {"/".join(map(str, stages))}'


def _check_layout(backbone, stored, root, where) -> None:
  """FormatError naming the first block one side has and the other lacks."""
  indices, theirs = _stored_layout(stored, root)
  ours = _stage_blocks(backbone)
  if theirs == ours:
    return
  sizes = (f'the checkpoint is {_depth_name(theirs)}, this backbone '
           f'{_depth_name(ours)}')
  for stage, (n_theirs, n_ours) in enumerate(zip(theirs + (0,) * 4,
                                                 ours + (0,) * 4)):
    if n_theirs == n_ours:
      continue
    if n_ours > n_theirs:
      variable = backbone.get_layer(f'res{stage + 2}_{n_theirs}_a').weights[0]
      raise FormatError(
          f'{where}: backbone variable {variable.name} (shape '
          f'{variable.shape.as_list()}) has no counterpart: {sizes}')
    position = sum(theirs[:stage]) + n_ours
    key = f'{root}/layer_with_weights-{indices[position]}/_temporal_conv'
    raise FormatError(f'{where}: holds {key}, which no variable of this '
                      f'backbone takes: {sizes}')


def check(backbone: tf_keras.Model, checkpoint: str, root: str) -> Mapping:
  """Matches every variable of `backbone` to the checkpoint by structure and
  shape; FormatError naming the first variable or key that does not match.
  Returns the mapping to restore with."""
  found = mapping(backbone, root)
  stored = _stored(checkpoint, root)
  where = f'{checkpoint} (Model Garden ResNet3D under {root!r})'
  _check_layout(backbone, stored, root, where)
  for key, variable in found.variables.items():
    if key not in stored:
      raise FormatError(
          f'{where}: backbone variable {variable.name} (shape '
          f'{variable.shape.as_list()}) has no counterpart (looked for '
          f'{key})')
    if stored[key] != variable.shape.as_list():
      raise FormatError(
          f'{where}: backbone variable {variable.name} has shape '
          f'{variable.shape.as_list()} but {key} has {stored[key]}: another '
          'width, temporal kernel or input (a 2D checkpoint?)')
  for key in sorted(stored):
    if key in found.variables:
      continue
    if found.unused_shortcuts.get(key) == stored[key]:
      continue  # an identity block's unused shortcut
    raise FormatError(
        f'{where}: holds {key} (shape {stored[key]}), which no variable of '
        f'this backbone takes: a deeper network, a self-gating or '
        'squeeze-excitation block, or another model')
  _check_run_params(checkpoint, backbone)
  return found


def _check_run_params(checkpoint: str, backbone: tf_keras.Model) -> None:
  """What the weights cannot show, from the Model Garden run's params.yaml
  beside the checkpoint (release files have none: nothing to check)."""
  path = os.path.join(os.path.dirname(checkpoint), 'params.yaml')
  if not tf.io.gfile.exists(path):
    return
  params = params_dict.read_yaml_to_params_dict(path).as_dict()
  spec = (params.get('task', {}).get('model', {}).get('backbone', {})
          .get('resnet_3d'))
  if not spec:
    return  # our own run, or not a ResNet3D run
  stem = backbone.get_layer('stem_conv')
  wanted = {'stem_conv_temporal_stride': stem.strides[0],
            'stem_pool_temporal_stride': RELEASE_STEM_POOL_TEMPORAL_STRIDE}
  for field, value in wanted.items():
    if field in spec and int(spec[field]) != value:
      raise FormatError(
          f'{checkpoint}: its run ({path}) has backbone.resnet_3d.{field}='
          f'{spec[field]}, this R3D {value}; the weights would load but '
          'compute something else')
  for i, block in enumerate(spec.get('block_specs') or ()):
    stride = int(block.get('temporal_strides', 1))
    if stride != 1:
      raise FormatError(
          f'{checkpoint}: its run ({path}) has block_specs[{i}].'
          f'temporal_strides={stride}; this R3D keeps the temporal '
          'resolution in every stage (1)')
    if block.get('use_self_gating'):
      raise FormatError(f'{checkpoint}: its run ({path}) has block_specs'
                        f'[{i}].use_self_gating=true; this R3D has none')


def _tree(keys_to_values: Dict[str, object]) -> Dict[str, object]:
  """tf.train.Checkpoint kwargs whose object paths are the keys (without
  the attribute suffix) and whose leaves are the values (variables)."""
  top = {}
  for key, value in keys_to_values.items():
    parts = key[:-len(_SUFFIX)].split('/')
    if parts[0] not in top:
      top[parts[0]] = tf.Module()
    node = top[parts[0]]
    for part in parts[1:-1]:
      child = getattr(node, part, None)
      if child is None:
        child = tf.Module()
        setattr(node, part, child)
      node = child
    setattr(node, parts[-1], value)
  return top


def restore(backbone: tf_keras.Model, checkpoint: str, root: str) -> int:
  """Checks, then restores our backbone from a Model Garden checkpoint;
  returns the number of variables restored."""
  found = check(backbone, checkpoint, root)
  status = tf.train.Checkpoint(**_tree(found.variables)).read(checkpoint)
  status.expect_partial().assert_existing_objects_matched()
  return len(found.variables)


def save(backbone: tf_keras.Model, path: str) -> str:
  """Writes our backbone as `tf.train.Checkpoint(backbone=ResNet3D)` of
  Model Garden (the release's format; identity blocks' unused shortcut
  variables included, as zeros and an identity normalisation); returns the
  prefix written, made its folder's latest checkpoint."""
  if any(layer.name in r3d.INPUT_LAYERS.values()
         for layer in backbone.layers):
    raise FormatError(f'{backbone.name}: Model Garden\'s ResNet3D takes RGB '
                      'frames; this backbone has another input_frames')
  _check_model_garden_can_build(backbone)
  found = mapping(backbone)
  values = dict(found.variables)
  for key, shape in found.unused_shortcuts.items():
    attribute = key[:-len(_SUFFIX)].rsplit('/', 1)[1]
    initial = tf.ones if attribute in ('gamma', 'moving_variance') else (
        tf.zeros)
    values[key] = tf.Variable(initial(shape), trainable=False)
  written = tf.train.Checkpoint(**_tree(values)).write(path)
  tf.compat.v1.train.update_checkpoint_state(
      os.path.dirname(written) or '.', written)
  return written


def _stage_blocks(backbone: tf_keras.Model) -> Tuple[int, ...]:
  stages = [int(re.match(r'res(\d+)_', name).group(1))
            for name in _blocks(backbone)]
  return tuple(stages.count(s) for s in sorted(set(stages)))


def _check_model_garden_can_build(backbone: tf_keras.Model) -> None:
  """FormatError unless Model Garden's ResNet3D has this depth and width."""
  from official.vision.modeling.backbones import resnet_3d  # pylint: disable=g-import-not-at-top
  blocks = _stage_blocks(backbone)
  depths = {tuple(spec[2] for spec in specs): depth
            for depth, specs in resnet_3d.RESNET_SPECS.items()}
  if blocks not in depths:
    raise FormatError(
        f'{backbone.name}: {sum(blocks)} bottleneck blocks {blocks}; Model '
        f'Garden\'s ResNet3D is built at depths {sorted(depths.values())}')
  stem = backbone.get_layer('stem_conv').weights[0].shape[-1]
  if stem != 64:
    raise FormatError(f'{backbone.name}: stem of {stem} filters (width '
                      f'{stem / 64:g}); Model Garden\'s ResNet3D has width 1')


def release_resnet3d_kwargs(depth: int = 50,
                            stage_temporal_kernels: Tuple[int, ...] = (
                                1, 1, 3, 3),
                            stem_temporal_kernel: int = 5,
                            stem_temporal_stride: int = 2) -> Dict:
  """Keyword arguments of Model Garden's ResNet3D for the network our
  `R3DConfig` of these fields builds (what video_ssl's
  cvrl_linear_eval_k600.yaml sets for the release)."""
  from official.vision.modeling.backbones import resnet_3d  # pylint: disable=g-import-not-at-top
  blocks = [spec[2] for spec in resnet_3d.RESNET_SPECS[depth]]
  return dict(
      model_id=depth, temporal_strides=[1] * len(blocks),
      temporal_kernel_sizes=[(k,) * n for k, n in
                             zip(stage_temporal_kernels, blocks)],
      use_self_gating=[False] * len(blocks),
      stem_conv_temporal_kernel_size=stem_temporal_kernel,
      stem_conv_temporal_stride=stem_temporal_stride,
      stem_pool_temporal_stride=RELEASE_STEM_POOL_TEMPORAL_STRIDE,
      norm_epsilon=1e-5)
