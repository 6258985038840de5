"""Crop windows sent at a fixed size, resized on the accelerator.

With `augment_on: device` the host's part of a view is only decoding: each
clip's crop window (decoded alone, `decode_and_crop_jpeg`) is placed at the
top left of a canvas of fixed shape `device_canvas` (static shapes for
TPUs), and the window's size travels with it. The train step resizes the
window to the crop size (`resize_window`) before the per-pixel work. On a
CPU host the resize cost about as much as decoding (docs/benchmarks.md);
on an accelerator it is a few gathers and lerps per pixel.

`resize_window` is the bilinear resize of `tf.image.resize` (half-pixel
centres, edges clamped, no antialiasing) written as two gathers and lerps
per axis in the same order as TF's kernel, so a window resized in the step
equals the window resized on the host up to float rounding.

A window taller or wider than the canvas is sent transposed when it fits
that way (a portrait video's window on a landscape canvas) and turned back
after the resize, which is exact. A window that fits neither way is shrunk
on the host to fit (aspect kept, rounded to uint8) and resized again on the
device: that clip's pixels differ from a single resize by about one
interpolation, and it is counted (the `windows_shrunk` training metric is
the fraction of views so sent).
"""

from typing import Tuple

import tensorflow as tf

# The window's description sent beside the canvas, in this order.
WINDOW_FIELDS = ('height', 'width', 'transposed', 'shrunk')
NUM_WINDOW_PARAMS = len(WINDOW_FIELDS)
SHRUNK = WINDOW_FIELDS.index('shrunk')


def _pad_to(frames: tf.Tensor, canvas_hw: Tuple[int, int]) -> tf.Tensor:
  """uint8 [T, h, w, 3] (h, w within the canvas) -> [T, H, W, 3], the
  frames at the top left, zeros elsewhere. Padded as [T, h, w * 3]: tf.pad
  on the merged last axis is about 4-9x faster than on four axes."""
  height, width = canvas_hw
  num = tf.shape(frames)[0]
  h, w = tf.shape(frames)[1], tf.shape(frames)[2]
  rows = tf.reshape(frames, [num, h, w * 3])
  rows = tf.pad(rows, [[0, 0], [0, height - h], [0, (width - w) * 3]])
  return tf.reshape(rows, [num, height, width, 3])


def place(frames: tf.Tensor, canvas_hw: Tuple[int, int]):
  """Host: a decoded window uint8 [T, h, w, 3] -> (canvas uint8 [T, H, W,
  3], float32 [NUM_WINDOW_PARAMS]).

  As is when it fits, else transposed when that fits, else shrunk to fit.
  """
  height, width = canvas_hw
  h, w = tf.shape(frames)[1], tf.shape(frames)[2]
  fits = (h <= height) & (w <= width)
  fits_transposed = (w <= height) & (h <= width)

  def as_is():
    return _pad_to(frames, canvas_hw), tf.stack([h, w, 0, 0])

  def transposed():
    return (_pad_to(tf.transpose(frames, [0, 2, 1, 3]), canvas_hw),
            tf.stack([w, h, 1, 0]))

  def shrunk():
    scale = tf.minimum(height / tf.cast(h, tf.float64),
                       width / tf.cast(w, tf.float64))
    new_h = tf.clip_by_value(tf.cast(tf.floor(tf.cast(h, tf.float64) * scale),
                                     tf.int32), 1, height)
    new_w = tf.clip_by_value(tf.cast(tf.floor(tf.cast(w, tf.float64) * scale),
                                     tf.int32), 1, width)
    small = tf.image.resize(frames, tf.stack([new_h, new_w]))
    small = tf.saturate_cast(tf.round(small), tf.uint8)
    return _pad_to(small, canvas_hw), tf.stack([new_h, new_w, 0, 1])

  canvas, window = tf.case([(fits, as_is), (fits_transposed, transposed)],
                           default=shrunk, exclusive=False)
  canvas = tf.ensure_shape(canvas, [frames.shape[0], height, width, 3])
  return canvas, tf.cast(window, tf.float32)


def _axis_samples(size: tf.Tensor, out_size: int):
  """tf.image.resize's bilinear sampling of one axis (half-pixel centres):
  lower and upper source indices [out_size] and the lerp weight."""
  scale = tf.cast(size, tf.float32) / out_size
  position = (tf.range(out_size, dtype=tf.float32) + 0.5) * scale - 0.5
  floor = tf.floor(position)
  lower = tf.maximum(tf.cast(floor, tf.int32), 0)
  upper = tf.minimum(tf.cast(tf.math.ceil(position), tf.int32), size - 1)
  return lower, upper, position - floor


def resize_window(canvas: tf.Tensor, window: tf.Tensor,
                  out_size: int) -> tf.Tensor:
  """Device: canvas [T, H, W, 3] (uint8) and its window params -> the
  window resized to float32 [T, S, S, 3] in [0, 255]."""
  height = tf.cast(window[0], tf.int32)
  width = tf.cast(window[1], tf.int32)
  top, bottom, y_lerp = _axis_samples(height, out_size)
  left, right, x_lerp = _axis_samples(width, out_size)
  x_lerp = x_lerp[:, None]

  def row(indices):
    rows = tf.gather(canvas, indices, axis=1)          # [T, S, W, 3]
    lo = tf.cast(tf.gather(rows, left, axis=2), tf.float32)
    hi = tf.cast(tf.gather(rows, right, axis=2), tf.float32)
    return lo + (hi - lo) * x_lerp                     # [T, S, S, 3]

  upper, lower = row(top), row(bottom)
  out = upper + (lower - upper) * y_lerp[:, None, None]
  return tf.cond(window[2] > 0.5, lambda: tf.transpose(out, [0, 2, 1, 3]),
                 lambda: out)
