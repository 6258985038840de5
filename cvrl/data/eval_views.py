"""Evaluation views: the deterministic geometry of the test protocol.

Paper 4.1: 10 clips evenly spaced over the video x 3 crops, each clip's
short side resized to `test_short_side` and square crops taken at the start,
centre and end of the long side (SlowFast's 3-crop), all views of a video
kept together. Called by `pipelines` (mode 'test') and feature export.
"""

from typing import Dict

import tensorflow as tf

from cvrl.configs import video_data
from cvrl.data import decoding
from cvrl.data import temporal_sampling as ts


def resize_short_side(images, short_side: int) -> tf.Tensor:
  """uint8/float [T, H, W, 3] -> float32 with min(H, W) == short_side."""
  hw = tf.cast(tf.shape(images)[1:3], tf.float32)
  scale = short_side / tf.reduce_min(hw)
  size = tf.cast(tf.round(hw * scale), tf.int32)
  size = tf.maximum(size, short_side)
  return tf.image.resize(images, size, method='bilinear')


def three_crops(images, side: int, num_crops: int) -> tf.Tensor:
  """[T, H, W, 3] with min(H, W) == side -> [num_crops, T, side, side, 3].

  3 crops: start, centre and end of the long side (SlowFast); 1: centre.
  """
  hw = tf.shape(images)[1:3]
  long_axis_is_height = hw[0] > hw[1]
  extra = tf.maximum(hw[0], hw[1]) - side
  if num_crops == 1:
    offsets = [extra // 2]
  else:
    offsets = [tf.constant(0), extra // 2, extra]
  crops = []
  for offset in offsets:
    y = tf.where(long_axis_is_height, offset, 0)
    x = tf.where(long_axis_is_height, 0, offset)
    crops.append(images[:, y:y + side, x:x + side, :])
  out = tf.stack(crops)
  return tf.ensure_shape(out, [num_crops, None, side, side, 3])


def test_views(example: Dict[str, tf.Tensor], seed,
               config: video_data.VideoDataConfig) -> Dict[str, tf.Tensor]:
  """clips x crops views of one video, kept together.

  Returns {'image': [clips * crops, T, S', S', 3]} ordered clip-major (all
  crops of clip 0, then clip 1, ...), S' = test_short_side.
  """
  del seed  # deterministic
  frames = example['frames']
  length = tf.shape(frames)[0]
  starts = ts.evenly_spaced_starts(length, config.num_test_clips,
                                   config.num_frames, config.frame_stride)
  side = config.test_short_side
  views = []
  for c in range(config.num_test_clips):
    indices = ts.clip_indices(starts[c], length, config.num_frames,
                              config.frame_stride, config.temporal.short_video)
    images = decoding.decode_frames(tf.gather(frames, indices))
    images = resize_short_side(images, side) / 255.0
    views.append(three_crops(images, side, config.num_test_crops))
  image = tf.concat(views, axis=0)
  image = tf.ensure_shape(image, [
      config.num_test_clips * config.num_test_crops, config.num_frames, side,
      side, 3])
  return {'image': tf.clip_by_value(image, 0.0, 1.0), 'label': example['label']}
