"""Which checkpoint a rerun of a training job resumes from.

The newest checkpoint of the model dir, unless it cannot be read (a write
cut short by a preemption or a full disk, bytes damaged in storage): then it
is named with the reason, its files are set aside (renamed `*.damaged`, so
that a later save of the same step cannot be confused with it and nothing
is lost), and the newest readable one is used instead, with a warning naming
the steps that will be trained again. The model dir's 'checkpoint' state
file is rewritten to point at it, so that Orbit's controller restores that
one and the input pipeline starts at its step. None readable: an error
listing them. Only the chief (`is_chief`) renames files or writes the state
file; the other workers of a multi-worker job choose the same checkpoint.

A checkpoint is readable when its index lists its tensors, its data files
hold at least their bytes, and every tensor can be read: TensorFlow's reader
checks each tensor's CRC-32C, so bytes changed anywhere in a data file are
found here, not later as a restore error taken for a damaged input record.

Only data loss, a missing file and a size shortfall count as damage. A read
that fails with a transient error (unavailable, deadline exceeded, aborted,
internal: a remote file system's hiccup) is retried with backoff; if it
keeps failing the job stops with `TransientReadError`, with every
checkpoint and the state file untouched.
"""

import os
import time
from typing import Callable, List, Optional, Tuple

from absl import logging
import tensorflow as tf

# Read errors that a later try may not meet; never taken for damage.
TRANSIENT = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
             tf.errors.AbortedError, tf.errors.InternalError,
             tf.errors.ResourceExhaustedError)
RETRY_DELAYS_S = (1.0, 4.0, 15.0)
DAMAGED_SUFFIX = '.damaged'


class ResumeError(ValueError):
  """No checkpoint of the model dir can be read."""


class TransientReadError(ResumeError):
  """A checkpoint read kept failing with a transient error."""


def _read_all(prefix: str) -> Optional[str]:
  """Why `prefix` cannot be restored, or None; transient errors raise."""
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
  for key in sorted(shapes):  # each read checks the tensor's checksum
    reader.get_tensor(key)
  return None


def damage(prefix: str, sleep: Callable[[float], None] = time.sleep
           ) -> Optional[str]:
  """Why checkpoint `prefix` cannot be restored, or None when it can.

  Raises:
    TransientReadError: a transient error on every try (RETRY_DELAYS_S).
  """
  for attempt in range(len(RETRY_DELAYS_S) + 1):
    try:
      return _read_all(prefix)
    except TRANSIENT as e:
      if attempt == len(RETRY_DELAYS_S):
        raise TransientReadError(
            f'{prefix}: reading it failed {attempt + 1} times with '
            f'{type(e).__name__} ({_first_line(e)}); nothing was changed: '
            'run the job again once the file system answers') from e
      logging.warning('checkpoint %s: %s, trying again in %g s', prefix,
                      type(e).__name__, RETRY_DELAYS_S[attempt])
      sleep(RETRY_DELAYS_S[attempt])
    except (tf.errors.OpError, IndexError, ValueError) as e:
      return _first_line(e)
  return None


def _first_line(e: Exception) -> str:
  message = getattr(e, 'message', None) or str(e) or type(e).__name__
  return message.strip().splitlines()[0]


def set_aside(prefix: str) -> List[str]:
  """Renames the checkpoint's files to `<name>.damaged`; returns the new
  names."""
  moved = []
  for path in tf.io.gfile.glob(prefix + '.*'):
    if path.endswith(DAMAGED_SUFFIX):
      continue
    tf.io.gfile.rename(path, path + DAMAGED_SUFFIX, overwrite=True)
    moved.append(path + DAMAGED_SUFFIX)
  return moved


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


def select(model_dir: str, is_chief: bool = True,
           sleep: Callable[[float], None] = time.sleep
           ) -> Tuple[Optional[str], int, List[str]]:
  """(checkpoint to resume from or None, its global step, lines to log);
  ResumeError when the model dir has checkpoints and none is readable,
  TransientReadError when reading kept failing (nothing changed)."""
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
    problem = damage(prefix, sleep)
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
  if is_chief:
    for bad, _ in damaged:
      moved = set_aside(bad)
      if moved:
        lines.append(f'resume: {bad} set aside as {bad}.*{DAMAGED_SUFFIX}')
    kept = candidates[:candidates.index(prefix) + 1]
    tf.compat.v1.train.update_checkpoint_state(
        model_dir, prefix, all_model_checkpoint_paths=kept)
  for line in lines:
    logging.warning('%s', line)
  return prefix, step, lines


def _step_from_name(prefix: str) -> int:
  """The number of 'ckpt-N' (Model Garden names checkpoints by step)."""
  return int(prefix.rsplit('-', 1)[1])
