"""Restoring a backbone from a checkpoint, and checking what was restored.

Model Garden's video_ssl linear evaluation calls `Checkpoint.read` without
looking at the result: a checkpoint of another depth or width silently
leaves the backbone at its random initialisation. Here every backbone
variable is matched to the checkpoint by its object path and shape *before*
anything is restored; the first mismatch fails naming the variable.

Checkpoints hold the backbone under the root key 'backbone' (pretraining and
classification runs of `train_lib`, and `cvrl.tools.inflate_imagenet` output):

  backbone/layer_with_weights-{i}/{attribute}/.ATTRIBUTES/VARIABLE_VALUE

where i counts the layers that have weights in `model.layers` order (how
tf_keras names a functional model's children). Model Garden's video_ssl
checkpoints (the authors' released encoders, and Model Garden training
runs) are recognised by their keys and read by `model_garden_checkpoint`,
with the same checks. A checkpoint that cannot be read (a truncated file)
fails naming it.
"""

import os
from typing import Dict, List, Tuple

import tensorflow as tf
import tf_keras

from official.modeling.hyperparams import params_dict

from cvrl.modeling import model_garden_checkpoint
from cvrl.modeling import r3d

BACKBONE_KEY = 'backbone'
_SUFFIX = '/.ATTRIBUTES/VARIABLE_VALUE'


class RestoreError(ValueError):
  """The checkpoint does not hold the configured backbone."""


def resolve_checkpoint(path: str) -> str:
  """A checkpoint prefix from a prefix or a folder (its latest checkpoint)."""
  if not path:
    raise RestoreError('no checkpoint given')
  # A folder is known by its 'checkpoint' file, not by isdir: object stores
  # (gs://, ram://) have no real folders.
  latest = tf.train.latest_checkpoint(path)
  if latest:
    return latest
  if tf.io.gfile.isdir(path):
    # A folder without a 'checkpoint' file (a release untarred): its one
    # checkpoint.
    found = tf.io.gfile.glob(os.path.join(path, '*.index'))
    if len(found) == 1:
      return found[0][:-len('.index')]
    raise RestoreError(
        f'{path}: folder holds no checkpoint' if not found else
        f'{path}: folder holds {len(found)} checkpoints and no "checkpoint" '
        f'file saying which is the latest; give one prefix, e.g. '
        f'{found[0][:-len(".index")]}')
  if not tf.io.gfile.glob(path + '.index'):
    raise RestoreError(f'{path}: no such checkpoint (expected {path}.index '
                       'or a folder with a "checkpoint" file)')
  return path


def expected_keys(backbone: tf_keras.Model, root: str = BACKBONE_KEY
                  ) -> List[Tuple[str, tf.Variable]]:
  """(checkpoint key, variable) of every backbone weight, in layer order."""
  keys = []
  weighted = [layer for layer in backbone.layers if layer.weights]
  for index, layer in enumerate(weighted):
    for variable in layer.weights:
      attribute = variable.name.split('/')[-1].split(':')[0]
      keys.append((f'{root}/layer_with_weights-{index}/{attribute}{_SUFFIX}',
                   variable))
  return keys


def check_backbone_checkpoint(backbone: tf_keras.Model, checkpoint: str,
                              root: str = BACKBONE_KEY) -> Dict[str, int]:
  """Raises RestoreError at the first backbone variable the checkpoint lacks
  or holds with another shape, or at a checkpoint backbone variable the
  configured backbone does not have. Returns counts for logging."""
  # The reader of the prefix itself: tf.train.list_variables first asks
  # whether the prefix is a folder, which an object store may answer yes.
  stored = tf.compat.v1.train.NewCheckpointReader(
      checkpoint).get_variable_to_shape_map()
  prefix = root + '/'
  # Weights only: optimizer slots (momentum) of backbone variables live
  # under the same prefix with '.OPTIMIZER_SLOT' in their key.
  stored_backbone = {k for k in stored if k.startswith(prefix) and
                     k.endswith(_SUFFIX) and '.OPTIMIZER_SLOT' not in k}
  if not stored_backbone:
    roots = sorted({k.split('/')[0] for k in stored if '/' in k})
    raise RestoreError(f'{checkpoint}: no {root!r} in the checkpoint (it '
                       f'holds {roots}); expected a CVRL pretraining, '
                       'classification or inflation checkpoint')
  expected = expected_keys(backbone, root)
  for key, variable in expected:
    if key not in stored:
      raise RestoreError(
          f'{checkpoint}: backbone variable {variable.name} (shape '
          f'{variable.shape.as_list()}) is not in the checkpoint (looked for '
          f'{key}); the checkpoint was written for another backbone')
    if list(stored[key]) != variable.shape.as_list():
      raise RestoreError(
          f'{checkpoint}: backbone variable {variable.name} has shape '
          f'{variable.shape.as_list()} but the checkpoint holds {key} with '
          f'shape {list(stored[key])}; depth or width differ from the run '
          'that wrote it')
  extra = sorted(stored_backbone - {key for key, _ in expected})
  if extra:
    raise RestoreError(
        f'{checkpoint}: holds backbone variable {extra[0]} (and '
        f'{len(extra) - 1} more) that the configured backbone does not have; '
        'the checkpoint was written for a deeper or different backbone')
  return {'variables': len(expected)}


def input_frames_of(backbone: tf_keras.Model) -> str:
  """The `input_frames` an R3D was built with, from its input layer's name
  ('rgb' when it has none)."""
  names = {layer.name for layer in backbone.layers}
  for frames, layer_name in r3d.INPUT_LAYERS.items():
    if layer_name in names:
      return frames
  return 'rgb'


def _params_path(checkpoint: str) -> str:
  return os.path.join(os.path.dirname(checkpoint), 'params.yaml')


def run_params(checkpoint: str) -> dict:
  """The params.yaml of the run that wrote `checkpoint` (beside it), as a
  dict; {} for checkpoints without one (exported or inflated backbones)."""
  path = _params_path(checkpoint)
  if not tf.io.gfile.exists(path):
    return {}
  # Written by Model Garden's train_utils.serialize_config (with python
  # tuples); read as its own readers do.
  return params_dict.read_yaml_to_params_dict(path).as_dict()


def param_at(params: dict, keys, default=None):
  """One value of a `run_params` dict by its key path."""
  node = params
  for key in keys:
    if not isinstance(node, dict) or key not in node:
      return default
    node = node[key]
  return node


def check_input_frames(backbone: tf_keras.Model, checkpoint: str) -> None:
  """Fails when the run that wrote `checkpoint` (its params.yaml beside it)
  fed the encoder other frames than `backbone` takes: residual-frame and RGB
  encoders have the same variables, so a mismatch would restore silently and
  give meaningless features. Checkpoints without a params.yaml (exported or
  inflated backbones) are not checked."""
  params = run_params(checkpoint)
  if not params:
    return
  written = param_at(params, ('task', 'model', 'backbone', 'cvrl_r3d',
                              'input_frames')) or 'rgb'
  wanted = input_frames_of(backbone)
  if written != wanted:
    raise RestoreError(
        f'{checkpoint}: trained with model.backbone.cvrl_r3d.input_frames='
        f'{written!r} ({_params_path(checkpoint)}), this model has '
        f'{wanted!r}; set task.model.backbone.cvrl_r3d.input_frames={written}')


def checkpoint_format(checkpoint: str) -> str:
  """'model_garden' (video_ssl's ResNet3D) or 'cvrl' (this project's), from
  the checkpoint's keys; RestoreError naming the file if it is unreadable."""
  try:
    root = model_garden_checkpoint.backbone_root(checkpoint)
  except (tf.errors.OpError, ValueError) as e:
    raise RestoreError(f'{checkpoint}: cannot be read ({_first_line(e)})'
                       ) from e
  return 'cvrl' if root is None else 'model_garden'


def _first_line(error: Exception) -> str:
  text = getattr(error, 'message', None) or str(error)
  return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def read_checkpoint(checkpoint: str, read_fn):
  """read_fn() (a restore from `checkpoint`), with a damaged file (cut
  short, or not a checkpoint) said in one line naming it."""
  try:
    return read_fn()
  except (tf.errors.OpError, IndexError, ValueError) as e:
    if isinstance(e, RestoreError):
      raise
    raise RestoreError(
        f'{checkpoint}: cannot be read, the file is damaged or incomplete '
        f'({type(e).__name__}: {_first_line(e)}); give another checkpoint') \
        from e


def restore_backbone(backbone: tf_keras.Model, checkpoint_path: str) -> str:
  """Checks, then restores the backbone; returns the checkpoint used."""
  checkpoint = resolve_checkpoint(checkpoint_path)
  if checkpoint_format(checkpoint) == 'model_garden':
    frames = input_frames_of(backbone)
    if frames != 'rgb':
      raise RestoreError(
          f'{checkpoint}: a Model Garden ResNet3D checkpoint, which takes RGB '
          f'frames; this model has input_frames={frames!r}: set '
          'task.model.backbone.cvrl_r3d.input_frames=rgb')
    try:
      root = model_garden_checkpoint.backbone_root(checkpoint)
      read_checkpoint(checkpoint, lambda: model_garden_checkpoint.restore(
          backbone, checkpoint, root))
    except model_garden_checkpoint.FormatError as e:
      raise RestoreError(str(e)) from e
    return checkpoint
  check_backbone_checkpoint(backbone, checkpoint)
  check_input_frames(backbone, checkpoint)
  status = read_checkpoint(checkpoint, lambda: tf.train.Checkpoint(
      **{BACKBONE_KEY: backbone}).read(checkpoint))
  # The names matched above; this also catches a variable Keras tracks
  # outside `layer.weights`.
  status.expect_partial().assert_existing_objects_matched()
  return checkpoint


def save_backbone(backbone: tf_keras.Model, path: str) -> str:
  """Writes a checkpoint holding only the backbone (restorable as above),
  and makes it its folder's latest, so the folder can be given instead."""
  written = tf.train.Checkpoint(**{BACKBONE_KEY: backbone}).write(path)
  tf.compat.v1.train.update_checkpoint_state(
      os.path.dirname(written) or '.', written)
  return written
