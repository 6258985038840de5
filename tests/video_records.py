"""Writes small TFRecords of known frames for the input-pipeline tests."""

import numpy as np
import tensorflow as tf

from cvrl.data import features


def encode(image: np.ndarray, fmt: str = 'jpeg') -> bytes:
  if fmt == 'png':
    return tf.io.encode_png(image).numpy()
  return tf.io.encode_jpeg(image, quality=95).numpy()


def index_frames(num_frames: int, height: int = 48, width: int = 64,
                 step: int = 3) -> list:
  """Flat grey frames whose value encodes the frame index: k * step + 10."""
  return [np.full((height, width, 3), k * step + 10, np.uint8)
          for k in range(num_frames)]


def textured_frame(height: int = 48, width: int = 64, seed: int = 0):
  rng = np.random.default_rng(seed)
  base = rng.integers(0, 255, size=(height // 8, width // 8, 3))
  return np.kron(base, np.ones((8, 8, 1))).astype(np.uint8)


def sequence_example(encoded_frames, label: int = 0,
                     clip_id: str = '') -> bytes:
  example = tf.train.SequenceExample()
  example.context.feature[features.LABEL_INDEX_KEY].int64_list.value.append(
      label)
  if clip_id:
    example.context.feature[features.CLIP_ID_KEY].bytes_list.value.append(
        clip_id.encode('utf-8'))
  frames = example.feature_lists.feature_list[features.IMAGE_KEY]
  for frame in encoded_frames:
    frames.feature.add().bytes_list.value.append(frame)
  return example.SerializeToString()


def write_records(path: str, videos, fmt: str = 'jpeg') -> str:
  """videos: list of (list of uint8 frames, label[, clip id])."""
  with tf.io.TFRecordWriter(path) as writer:
    for frames, label, *clip_id in videos:
      writer.write(sequence_example([encode(f, fmt) for f in frames], label,
                                    *clip_id))
  return path


def frame_index_of(values: np.ndarray, step: int = 3) -> np.ndarray:
  """Inverts `index_frames` from mean intensities in [0, 1]."""
  return np.round((values * 255.0 - 10) / step).astype(int)
