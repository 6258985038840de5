"""Crop windows sent packed in one byte buffer, resized on the accelerator.

With `augment_on: device` the host's part of a view is only decoding. The
example map draws each view's crop window and keeps its encoded frames;
after batching, `pack` decodes every frame's window of the batch (JPEG
windows alone, `decode_and_crop_jpeg`) straight into ONE flat uint8 buffer
of fixed length (static shapes for TPUs), each window's rows back to back,
and gives each view its byte offset and stored size. The train step reads
the windows' rows out of the buffer and resizes them to the crop size
(`resize_window`) before the per-pixel work.

Why one buffer: on a CPU host what separates decoding from feeding an
accelerator is copying bytes (docs/benchmarks.md). A window written once,
where it is sent from, costs one copy; a window stacked into a clip, padded
to a fixed canvas and batched cost three, of canvas-sized bytes.

The buffer holds `device_budget` of the bytes the batch would take if every
view filled the canvas (`device_canvas`: a window at most its width wide
and of at most its pixels is sent as is, portrait or landscape).
Windows are 0.3-1 of a frame, so a batch fills on average about half of
it; a batch that needs more than the budget has all its windows shrunk on
the host by one factor to fit, and is counted (metric `windows_shrunk`).
A window wider than the canvas is stored transposed when that fits (exact,
turned back after the resize), else shrunk to fit the canvas (counted).

`resize_window` is the bilinear resize of `tf.image.resize` (half-pixel
centres, edges clamped, no antialiasing) as row slices, gathers and lerps
in the same order as TF's kernel: a window resized in the step equals it
resized on the host up to float rounding. Inside XLA the rows are read as
XLA gather slices (one start index a row); outside, as ordinary gathers.
"""

import math
from typing import NamedTuple, Tuple

import tensorflow as tf
from tensorflow.compiler.tf2xla.python import xla as tfxla
from tensorflow.compiler.xla import xla_data_pb2

from cvrl.data import decoding

# A view's description sent beside the buffer, in this order: the window's
# stored size, whether it was transposed or shrunk on the host, and how many
# columns left of it its stored rows begin with (`JPEG_COLUMN`).
WINDOW_FIELDS = ('height', 'width', 'transposed', 'shrunk', 'left')
NUM_WINDOW_PARAMS = len(WINDOW_FIELDS)
SHRUNK = WINDOW_FIELDS.index('shrunk')
LEFT = WINDOW_FIELDS.index('left')
# libjpeg decodes a cropped window from the iMCU column at or left of the
# window's x (16 pixels for 4:2:0 and 4:2:2 JPEGs, 8 for 4:4:4), and TF then
# moves every decoded row left by the difference: a second copy of the
# window (7% of the host part's time). A window decoded alone is therefore
# decoded from the multiple of 16 at or left of its x, and its `left` extra
# columns are sent and skipped by the step: the same pixels, byte for byte,
# and 20% less decoding time a window (docs/benchmarks.md).
JPEG_COLUMN = 16
# What the example map keeps of a view for `pack`: the window in the frame,
# and whether its JPEG frames decode the window alone.
DRAW_FIELDS = ('y', 'x', 'height', 'width', 'cropped_decode')
NUM_DRAW_FIELDS = len(DRAW_FIELDS)
# Offsets are int32: a per-replica batch's buffer stays below 2 GiB.
MAX_BUFFER_BYTES = 2**31 - 1


def auto_budget(batch_size: int) -> float:
  """The default `device_budget` for a per-replica batch: a batch's views
  are 2 x batch independent crops whose sizes vary (the paper's crops fill
  0.55 of a 16:9 frame's canvas on average, standard deviation 0.17), so the
  budget that a batch exceeds only rarely falls with the batch like
  0.55 + 0.75 / sqrt(2 x batch): 1.0 for 1 (nothing is ever shrunk), 0.95
  for 2, 0.85 for 4, 0.75 for 8, 0.7 from 16 on (rounded up to 0.05).
  benchmarks/window_shrink.py measured it: at most 1 shrunk batch in 10^5
  at every per-replica batch (docs/benchmarks.md)."""
  want = 0.55 + 0.75 / math.sqrt(2 * max(1, batch_size))
  return min(1.0, max(0.7, math.ceil(want * 20 - 1e-9) / 20))


def budget_bytes(batch_size: int, num_frames: int,
                 canvas_hw: Tuple[int, int], budget: float) -> int:
  """Bytes of window data a batch's buffer holds (two views an example)."""
  full = batch_size * 2 * num_frames * canvas_hw[0] * canvas_hw[1] * 3
  return max(1, int(math.floor(budget * full)))


def buffer_length(budget: int, canvas_hw: Tuple[int, int]) -> int:
  """The buffer's static length: the budget, then one canvas row of zeros,
  so that a row slice of canvas width never runs past the end."""
  return budget + canvas_hw[1] * 3


class Placement(NamedTuple):
  """Where a batch's views go in its buffer, each int32 [N]: the stored
  window's height and width, whether it is transposed or shrunk, the extra
  columns its stored rows begin with, its first byte."""
  height: tf.Tensor
  width: tf.Tensor
  transposed: tf.Tensor
  shrunk: tf.Tensor
  left: tf.Tensor
  offsets: tf.Tensor


def plan(draws: tf.Tensor, frames_per_view: int, canvas_hw: Tuple[int, int],
         budget: int) -> Placement:
  """Where each view goes: draws int32 [N, NUM_DRAW_FIELDS] -> Placement.

  A window fits the canvas when it is at most the canvas's width wide and
  has at most its pixels (the step reads rows of canvas width; height is
  free): then it is stored as is; else transposed when that fits, else
  scaled to fit. A window stored as is and decoded alone starts at its
  JPEG column (`left` = x mod JPEG_COLUMN) when it still fits with those
  columns. Then, if the views need more than `budget` bytes, all are
  scaled by one factor to fit (flagged shrunk; decoded exactly, no extra
  columns)."""
  _, width = canvas_hw
  h, w = draws[:, 2], draws[:, 3]
  fits = _fits(h, w, canvas_hw)
  transposed = ~fits & _fits(w, h, canvas_hw)
  stored_h = tf.where(transposed, w, h)
  stored_w = tf.where(transposed, h, w)
  too_big = ~fits & ~transposed
  scale = tf.minimum(
      width / tf.cast(w, tf.float64),
      tf.sqrt(_area(canvas_hw) / tf.cast(h * w, tf.float64)))
  stored_h, stored_w = _scaled(stored_h, stored_w, scale, too_big,
                               canvas_hw)
  # Only where the extra columns fit too: a batch of views that fit never
  # needs more than the canvas's bytes a view.
  left = draws[:, 1] % JPEG_COLUMN
  left = tf.where(fits & (draws[:, 4] > 0) & _fits(h, w + left, canvas_hw),
                  left, 0)
  view_bytes = view_bytes_of(frames_per_view, stored_h, stored_w, left)
  used = tf.reduce_sum(tf.cast(view_bytes, tf.int64))
  over = used > budget
  # Area scales with the square of the factor; flooring keeps the sum below.
  factor = tf.sqrt(tf.cast(budget, tf.float64) / tf.cast(used, tf.float64))
  stored_h, stored_w = _scaled(stored_h, stored_w,
                               tf.fill(tf.shape(h), factor),
                               tf.fill(tf.shape(h), over), canvas_hw)
  left = tf.where(over, 0, left)
  view_bytes = view_bytes_of(frames_per_view, stored_h, stored_w, left)
  offsets = tf.cumsum(view_bytes, exclusive=True)
  return Placement(stored_h, stored_w, transposed, too_big | over, left,
                   offsets)


def view_bytes_of(frames_per_view: int, height, width, left) -> tf.Tensor:
  """Bytes a stored view takes: its frames' rows of `left` + width pixels."""
  return frames_per_view * height * (width + left) * 3


def _area(canvas_hw: Tuple[int, int]) -> float:
  return float(canvas_hw[0] * canvas_hw[1])


def _fits(h, w, canvas_hw):
  """At most the canvas's width wide and its area: a portrait window of a
  landscape canvas's pixels is stored as is (transposing it on the host
  cost a copy of every such window)."""
  return (w <= canvas_hw[1]) & (
      tf.cast(h, tf.float64) * tf.cast(w, tf.float64) <= _area(canvas_hw))


def _scaled(h, w, scale, where, canvas_hw):
  """(h, w) scaled down by `scale` where `where`, floored: within the width
  and the area when `scale` keeps them so."""
  new_h = tf.cast(tf.floor(tf.cast(h, tf.float64) * scale), tf.int32)
  new_w = tf.cast(tf.floor(tf.cast(w, tf.float64) * scale), tf.int32)
  new_w = tf.clip_by_value(new_w, 1, canvas_hw[1])
  new_h = tf.clip_by_value(new_h, 1, canvas_hw[0] * canvas_hw[1] // new_w)
  return tf.where(where, new_h, h), tf.where(where, new_w, w)


def decode_frame(flat_encoded: tf.Tensor, draws: tf.Tensor, left: tf.Tensor,
                 frames_per_view: int, i) -> tf.Tensor:
  """Frame i of the views' frames flattened [N * n] (view i // n): its
  window as drawn with `left[view]` more columns on its left, uint8
  [h, left + w, 3]."""
  view = i // frames_per_view
  extra = left[view]
  box = draws[view, :4] + tf.stack([0, -extra, 0, extra])
  return decoding.decode_frame_window(flat_encoded[i], box,
                                      draws[view, 4] > 0)


def pack(encoded: tf.Tensor, draws: tf.Tensor, canvas_hw: Tuple[int, int],
         budget: int):
  """Host, after batching: encoded frames string [N, n] (N views of n
  frames, every frame of a view with the view's window) and their draws
  int32 [N, NUM_DRAW_FIELDS] -> (buffer uint8 [buffer_length], offsets
  int32 [N], window params float32 [N, NUM_WINDOW_PARAMS]).

  One loop over the N * n frames decodes each window and writes it, rows
  back to back, into a TensorArray whose concatenation (with the zero tail)
  is the buffer: each window's bytes are copied once."""
  frames_per_view = encoded.shape[1]  # static; the views may not be
  placement = plan(draws, frames_per_view, canvas_hw, budget)
  stored_h, stored_w, transposed, shrunk, left, offsets = placement
  total = tf.shape(encoded)[0] * frames_per_view
  flat_encoded = tf.reshape(encoded, [total])

  def body(i, array):
    view = i // frames_per_view
    window = decode_frame(flat_encoded, draws, left, frames_per_view, i)
    window = tf.cond(transposed[view],
                     lambda: tf.transpose(window, [1, 0, 2]),
                     lambda: window)
    size = tf.stack([stored_h[view], stored_w[view]])
    window = tf.cond(
        shrunk[view],
        lambda: tf.saturate_cast(tf.round(tf.image.resize(window, size)),
                                 tf.uint8),
        lambda: window)
    return i + 1, array.write(i, tf.reshape(window, [-1]))

  array = tf.TensorArray(tf.uint8, size=total + 1, infer_shape=False,
                         element_shape=tf.TensorShape([None]))
  _, array = tf.while_loop(lambda i, _: i < total, body, (0, array))
  used = tf.reduce_sum(view_bytes_of(frames_per_view, stored_h, stored_w,
                                     left))
  length = buffer_length(budget, canvas_hw)
  array = array.write(total, tf.zeros([length - used], tf.uint8))
  buffer = tf.ensure_shape(array.concat(), [length])
  window = tf.cast(tf.stack([stored_h, stored_w, tf.cast(transposed, tf.int32),
                             tf.cast(shrunk, tf.int32), left], axis=1),
                   tf.float32)
  return buffer, offsets, window


def _axis_samples(size: tf.Tensor, out_size: int):
  """tf.image.resize's bilinear sampling of one axis (half-pixel centres):
  lower and upper source indices [out_size] and the lerp weight."""
  scale = tf.cast(size, tf.float32) / out_size
  position = (tf.range(out_size, dtype=tf.float32) + 0.5) * scale - 0.5
  floor = tf.floor(position)
  lower = tf.maximum(tf.cast(floor, tf.int32), 0)
  upper = tf.minimum(tf.cast(tf.math.ceil(position), tf.int32), size - 1)
  return lower, upper, position - floor


def _row_slices(buffer: tf.Tensor, starts: tf.Tensor, length: int,
                xla_gather: bool) -> tf.Tensor:
  """buffer[s:s + length] for each s of starts [M] -> [M, length]."""
  if xla_gather:  # one start index a row, inside XLA
    dims = xla_data_pb2.GatherDimensionNumbers(
        offset_dims=[1], start_index_map=[0], index_vector_dim=1)
    return tfxla.gather(buffer, starts[:, None], dims, [length],
                        indices_are_sorted=False)
  return tf.gather(buffer, starts[:, None] + tf.range(length))


def resize_window(buffer: tf.Tensor, offset: tf.Tensor, window: tf.Tensor,
                  num_frames: int, row_width: int, out_size: int,
                  xla_gather: bool = False) -> tf.Tensor:
  """Device: a view's window from the buffer -> float32 [n, S, S, 3] in
  [0, 255]. offset: its first byte; window: its WINDOW_FIELDS; row_width:
  the canvas width (every stored window is at most that wide, not counting
  its `left` columns, which are skipped)."""
  height = tf.cast(window[0], tf.int32)
  width = tf.cast(window[1], tf.int32)
  skip = tf.cast(window[LEFT], tf.int32)
  top, bottom, y_lerp = _axis_samples(height, out_size)
  left, right, x_lerp = _axis_samples(width, out_size)
  x_lerp = x_lerp[:, None]
  frame_rows = tf.range(num_frames)[:, None] * height  # [n, 1]
  stride = (skip + width) * 3  # bytes of a stored row

  def row(indices):
    starts = offset + (frame_rows + indices[None]) * stride + skip * 3
    rows = _row_slices(buffer, tf.reshape(starts, [-1]), row_width * 3,
                       xla_gather)
    rows = tf.reshape(rows, [num_frames, out_size, row_width, 3])
    lo = tf.cast(tf.gather(rows, left, axis=2), tf.float32)
    hi = tf.cast(tf.gather(rows, right, axis=2), tf.float32)
    return lo + (hi - lo) * x_lerp                     # [n, S, S, 3]

  upper, lower = row(top), row(bottom)
  out = upper + (lower - upper) * y_lerp[:, None, None]
  return tf.cond(window[2] > 0.5, lambda: tf.transpose(out, [0, 2, 1, 3]),
                 lambda: out)
