"""Which checkpoint a rerun of a training job resumes from.

The newest checkpoint of the model dir, unless it cannot be read (a write
cut short by a preemption or a full disk): then it is named with the reason,
and the newest readable one is used instead, with a warning naming the
steps that will be trained again. The model dir's 'checkpoint' state file
is rewritten to point at it, so that Orbit's controller restores that one
and the input pipeline starts at its step. None readable: an error listing
them. The damaged files are left where they are (a later save of the same
step replaces them).

A checkpoint is readable when its index lists its tensors, its data files
hold at least their bytes, and the tensor written last (TensorFlow writes
them in key order) and the global step can be read: what a truncated or
missing data file fails, without reading the whole checkpoint again.
"""

import os
from typing import List, Optional, Tuple

from absl import logging
import tensorflow as tf



class ResumeError(ValueError):
  """No checkpoint of the model dir can be read."""


def damage(prefix: str) -> Optional[str]:
  """Why checkpoint `prefix` cannot be restored, or None when it can."""
  try:
    reader = tf.compat.v1.train.NewCheckpointReader(prefix)
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    need = 0
    for key, shape in shapes.items():
      if dtypes[key] != tf.string:
        elements = 1
        for dim in shape:
          elements *= dim
        need += elements * dtypes[key].size
    have = sum(tf.io.gfile.stat(path).length
               for path in tf.io.gfile.glob(prefix + '.data-*'))
    if have < need:
      return (f'its data files hold {have} bytes, its tensors need {need} '
              '(cut short)')
    reader.get_tensor(max(shapes))
    for key in shapes:
      if key.startswith('global_step'):
        reader.get_tensor(key)
  except (tf.errors.OpError, IndexError, ValueError) as e:
    message = getattr(e, 'message', None) or str(e) or type(e).__name__
    return message.strip().splitlines()[0]
  return None


def _step(prefix: str) -> int:
  """The checkpoint's global step, read from the file without TensorFlow's
  runtime: restoring it into a variable (Model Garden's
  `read_global_step_from_checkpoint`) starts the eager context, after
  which a MultiWorkerMirrored strategy can no longer be built
  ('Collective ops must be configured at program startup')."""
  reader = tf.compat.v1.train.NewCheckpointReader(prefix)
  keys = sorted(k for k in reader.get_variable_to_shape_map()
                if k.split('/')[0] == 'global_step')
  if not keys:
    raise ResumeError(f'{prefix}: holds no global_step')
  return int(reader.get_tensor(keys[0]))


def select(model_dir: str) -> Tuple[Optional[str], int, List[str]]:
  """(checkpoint to resume from or None, its global step, lines to log);
  ResumeError when the model dir has checkpoints and none is readable."""
  state = tf.train.get_checkpoint_state(model_dir) if model_dir else None
  if state is None or not state.model_checkpoint_path:
    return None, 0, []
  listed = list(state.all_model_checkpoint_paths)
  if state.model_checkpoint_path not in listed:
    listed.append(state.model_checkpoint_path)
  candidates = [p if os.path.isabs(p) or '://' in p else
                os.path.join(model_dir, p) for p in listed]
  latest = candidates[-1]
  damaged = []
  for prefix in reversed(candidates):
    problem = damage(prefix)
    if problem is None:
      break
    damaged.append((prefix, problem))
    logging.warning('checkpoint %s cannot be read: %s', prefix, problem)
  else:
    raise ResumeError(
        f'{model_dir}: no checkpoint can be read ('
        + '; '.join(f'{p}: {why}' for p, why in damaged) + '). Move the '
        'folder aside to start again, or restore a copy of a checkpoint')
  step = _step(prefix)
  if not damaged:
    return prefix, step, []
  lines = [f'resume: {p} cannot be read ({why})' for p, why in damaged]
  lost = ''
  try:
    lost = f' (steps {step + 1}-{_step_from_name(latest)} are trained again)'
  except ValueError:
    pass
  lines.append(f'resume: WARNING: resuming from {prefix}, the newest '
               f'readable checkpoint, at step {step}{lost}')
  kept = candidates[:candidates.index(prefix) + 1]
  tf.compat.v1.train.update_checkpoint_state(
      model_dir, prefix, all_model_checkpoint_paths=kept)
  for line in lines:
    logging.warning('%s', line)
  return prefix, step, lines


def _step_from_name(prefix: str) -> int:
  """The number of 'ckpt-N' (Model Garden names checkpoints by step)."""
  return int(prefix.rsplit('-', 1)[1])
