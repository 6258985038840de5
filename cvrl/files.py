"""File access for every path a user gives: local, gs://, or any file system
TensorFlow knows (`tf.io.gfile`), in one place.

Python's `open`, `os.path` and `glob` see only local files; a model dir,
annotation CSV or label map on gs:// then fails at the end of a long job.
Library code reads and writes such paths through these helpers (a test
walks the sources and refuses the local-only calls, see
tests/test_remote_paths.py).
"""

import io
import os
from typing import Dict

import numpy as np
import tensorflow as tf

# What reading or writing a path may raise: local OS errors, and the
# tf.errors of remote file systems (NotFoundError, PermissionDeniedError...).
FILE_ERRORS = (OSError, tf.errors.OpError)


def open_file(path: str, mode: str = 'r'):
  """A file object for `path` ('r', 'w', 'a', 'rb', 'wb'); text is UTF-8."""
  return tf.io.gfile.GFile(path, mode)


def make_parent(path: str) -> None:
  """Creates the folder that will hold `path`, if it names one."""
  directory = os.path.dirname(path)
  if directory:
    tf.io.gfile.makedirs(directory)


def write_atomically(path: str, data) -> None:
  """Writes `data` (bytes or str) under a temporary name, then renames it,
  so a killed job never leaves a truncated file under the final name."""
  make_parent(path)
  tmp = f'{path}.tmp-{os.getpid()}'
  with open_file(tmp, 'wb' if isinstance(data, bytes) else 'w') as f:
    f.write(data)
  tf.io.gfile.rename(tmp, path, overwrite=True)


def save_npz(path: str, **arrays: np.ndarray) -> None:
  """np.savez to any path (np.savez needs a seekable file; GFile is not)."""
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  write_atomically(path, buffer.getvalue())


def load_npz(path: str) -> Dict[str, np.ndarray]:
  """All arrays of an .npz on any path."""
  with open_file(path, 'rb') as f:
    data = np.load(io.BytesIO(f.read()), allow_pickle=False)
    return {name: data[name] for name in data.files}


def is_file(path: str) -> bool:
  """True if `path` exists and is not a folder (any file system)."""
  return tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path)
