"""Temporally consistent spatial augmentation of a clip (paper Algorithm 1).

Every random choice of a view (crop window, flip, colour jitter factors and
their order, greyscale, blur sigma, solarize) is drawn ONCE per clip from a
stateless seed into a `ClipParams`, then applied to every frame in two parts:

  prepare (host)    decode the crop window of each JPEG -> resize; the
                    per-pixel parameters packed into a float32 vector
                    (`PreparedView`: frames [T, S, S, 3], params [P])
  apply (anywhere)  flip -> colour jitter (random order) -> greyscale ->
                    blur -> solarize, frames in [0, 1] (`apply_prepared`)

`augment_on: host` does both in the tf.data map. `augment_on: device` leaves
the host only the decoding: a view step keeps the encoded frames and the
window (`defer_decode`), the batch's windows are decoded into one uint8
buffer (`window_buffer.pack`), and the train step resizes them and applies
the rest (`apply_batch`). One implementation of each part, so both
give the same clips for the same seed (up to float rounding).

The pipeline picks one of three named view steps (same signature, all
returning a `PreparedView`):
  consistent_view    Algorithm 1 (draw once, apply to every frame)
  per_frame_view     Table 9 ablation: every frame draws its own parameters
                     (params [T, P])
  centre_crop_view   Table 9 ablation: no spatial augmentation
"""

import functools
import math
from typing import NamedTuple

import tensorflow as tf

from cvrl.configs import video_data
from cvrl.data import decoding
from cvrl.data import window_buffer

_NUM_CROP_ATTEMPTS = 10


class ClipParams(NamedTuple):
  """Every random choice of one view of one clip, drawn once (scalars)."""
  window: tf.Tensor      # int32 [4]: y, x, height, width in the frame
  flip: tf.Tensor        # bool
  jitter: tf.Tensor      # bool: colour jitter applied
  brightness: tf.Tensor  # float32 factor
  contrast: tf.Tensor    # float32 factor
  saturation: tf.Tensor  # float32 factor
  hue: tf.Tensor         # float32 delta
  order: tf.Tensor       # int32 [4]: order of the four jitter ops
  grayscale: tf.Tensor   # bool
  blur: tf.Tensor        # bool
  sigma: tf.Tensor       # float32 blur sigma
  solarize: tf.Tensor    # bool


class PreparedView(NamedTuple):
  """A view after the host's part: its crop, and what is left to apply."""
  # The crop window resized, float32 [T, S, S, 3] in [0, 255]; or (augment_on:
  # device, decoding deferred) the encoded frames, string [T].
  frames: tf.Tensor
  # float32 [P] (one draw a clip) or [T, P] (per frame); with decoding
  # deferred the window's draw (window_buffer.DRAW_FIELDS) comes first.
  params: tf.Tensor


class PixelField(NamedTuple):
  """One per-pixel choice of `ClipParams` as it travels in the packed
  float32 vector: its size, how it is read back, and its no-op value."""
  name: str
  size: int
  kind: str  # 'flag' (bool), 'int' (int32) or 'float'
  identity: tuple


# The per-pixel choices, in packed order: the one list that `pack_pixel_params`,
# `unpack_pixel_params`, NUM_PIXEL_PARAMS and IDENTITY_PIXEL_PARAMS derive
# from. A new augmentation adds its ClipParams field, its draw in
# `sample_clip_params`, its step in `apply_pixels` and one row here.
PIXEL_FIELDS = (
    PixelField('flip', 1, 'flag', (0.,)),
    PixelField('jitter', 1, 'flag', (0.,)),
    PixelField('brightness', 1, 'float', (1.,)),
    PixelField('contrast', 1, 'float', (1.,)),
    PixelField('saturation', 1, 'float', (1.,)),
    PixelField('hue', 1, 'float', (0.,)),
    PixelField('order', 4, 'int', (0., 1., 2., 3.)),
    PixelField('grayscale', 1, 'flag', (0.,)),
    PixelField('blur', 1, 'flag', (0.,)),
    PixelField('sigma', 1, 'float', (1.,)),
    PixelField('solarize', 1, 'flag', (0.,)),
)
NUM_PIXEL_PARAMS = sum(field.size for field in PIXEL_FIELDS)
# Changes nothing: no flip, jitter, greyscale, blur or solarize.
IDENTITY_PIXEL_PARAMS = sum((field.identity for field in PIXEL_FIELDS), ())


def pack_pixel_params(params: ClipParams) -> tf.Tensor:
  """The per-pixel choices of `params` as float32 [NUM_PIXEL_PARAMS] (exact:
  flags are 0/1, the order's integers are small)."""
  return tf.concat([
      tf.reshape(tf.cast(getattr(params, field.name), tf.float32),
                 [field.size]) for field in PIXEL_FIELDS], axis=0)


def unpack_pixel_params(packed: tf.Tensor) -> ClipParams:
  """Inverse of `pack_pixel_params` (the window is not needed any more)."""
  values, start = {}, 0
  for field in PIXEL_FIELDS:
    value = packed[start:start + field.size]
    value = value[0] if field.size == 1 else value
    start += field.size
    if field.kind == 'flag':
      value = value > 0.5
    elif field.kind == 'int':
      value = tf.cast(value, tf.int32)
    values[field.name] = value
  return ClipParams(window=tf.zeros([4], tf.int32), **values)


def _split(seed, n):
  return tf.unstack(tf.random.experimental.stateless_split(seed, n))


def _uniform(seed, low, high):
  return tf.random.stateless_uniform([], seed=seed, minval=low, maxval=high)


def _bernoulli(seed, p: float):
  return tf.random.stateless_uniform([], seed=seed) < p


def sample_crop_window(seed, height, width, area_range, aspect_range):
  """A random crop [y, x, h, w] (int32) of an height x width frame.

  Area is a uniform fraction of the frame in `area_range`, aspect (w / h) is
  log-uniform in `aspect_range`. Up to 10 candidates are drawn at once and
  the first that fits is used; if none fits, the whole frame.
  """
  size_seed, pos_seed = _split(seed, 2)
  h_f, w_f = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
  draws = tf.random.stateless_uniform([_NUM_CROP_ATTEMPTS, 2], seed=size_seed)
  area = (area_range[0] + draws[:, 0] * (area_range[1] - area_range[0])) * (
      h_f * w_f)
  log_lo, log_hi = math.log(aspect_range[0]), math.log(aspect_range[1])
  aspect = tf.exp(log_lo + draws[:, 1] * (log_hi - log_lo))
  crop_w = tf.cast(tf.round(tf.sqrt(area * aspect)), tf.int32)
  crop_h = tf.cast(tf.round(tf.sqrt(area / aspect)), tf.int32)
  fits = ((crop_w <= width) & (crop_h <= height) & (crop_w >= 1) &
          (crop_h >= 1))
  first = tf.argmax(tf.cast(fits, tf.int32), output_type=tf.int32)
  found = tf.reduce_any(fits)
  crop_h = tf.where(found, crop_h[first], height)
  crop_w = tf.where(found, crop_w[first], width)
  offsets = tf.random.stateless_uniform([2], seed=pos_seed)
  y = tf.cast(offsets[0] * tf.cast(height - crop_h + 1, tf.float32), tf.int32)
  x = tf.cast(offsets[1] * tf.cast(width - crop_w + 1, tf.float32), tf.int32)
  y = tf.minimum(y, height - crop_h)
  x = tf.minimum(x, width - crop_w)
  return tf.stack([y, x, crop_h, crop_w])


def centre_square_window(height, width):
  side = tf.minimum(height, width)
  return tf.stack([(height - side) // 2, (width - side) // 2, side, side])


def draw_clip_params(seed, view: video_data.ViewAugmentationConfig,
                     frame_hw) -> ClipParams:
  """Draws every random choice of one view once, for frames of `frame_hw`."""
  crop_seed, param_seed = _split(seed, 2)
  window = sample_crop_window(crop_seed, frame_hw[0], frame_hw[1],
                              view.crop_area_range, view.crop_aspect_range)
  s = _split(param_seed, 11)
  return ClipParams(
      window=window,
      flip=_bernoulli(s[0], view.flip_prob),
      jitter=_bernoulli(s[1], view.color_jitter_prob),
      brightness=_uniform(s[2], max(0.0, 1 - view.brightness),
                          1 + view.brightness),
      contrast=_uniform(s[3], max(0.0, 1 - view.contrast), 1 + view.contrast),
      saturation=_uniform(s[4], max(0.0, 1 - view.saturation),
                          1 + view.saturation),
      hue=(_uniform(s[5], -view.hue, view.hue) if view.hue
           else tf.constant(0.0)),
      order=tf.argsort(tf.random.stateless_uniform([4], seed=s[6])),
      grayscale=_bernoulli(s[7], view.grayscale_prob),
      blur=_bernoulli(s[8], view.blur_prob),
      sigma=_uniform(s[9], *view.blur_sigma_range),
      solarize=_bernoulli(s[10], view.solarize_prob),
  )


def color_jitter(frames, params) -> tf.Tensor:
  """Brightness, contrast, saturation, hue in the drawn order (SimCLR style).

  Contrast uses the per-channel mean over the whole clip, so the change is
  one affine map for all frames.
  """
  def brightness(x):
    return x * params.brightness

  def contrast(x):
    mean = tf.reduce_mean(x, axis=[0, 1, 2], keepdims=True)
    return (x - mean) * params.contrast + mean

  def saturation(x):
    return tf.image.adjust_saturation(x, params.saturation)

  def hue(x):
    return tf.image.adjust_hue(x, params.hue)

  ops = [brightness, contrast, saturation, hue]

  # A loop, not 4 switch_cases in a row: XLA compiles the body once. Four
  # chained switches took 24-53 s to compile for 16-32 frames of 64 x 64
  # on a 2-core CPU, at every job start and for every clip shape; the loop
  # compiles in 0.5-1.7 s and runs as fast (docs/benchmarks.md).
  def position(i, x):
    x = tf.switch_case(params.order[i], [lambda op=op: op(x) for op in ops])
    return i + 1, tf.clip_by_value(x, 0.0, 1.0)
  _, frames = tf.while_loop(lambda i, _: i < len(ops), position,
                            (tf.constant(0), frames))
  return frames


def gaussian_blur(frames, sigma, kernel_size: int) -> tf.Tensor:
  """Separable Gaussian blur of [T, H, W, C] with mirrored borders.

  Written as weighted sums of shifted copies, pairing the taps at -i and +i
  (the kernel is symmetric): XLA fuses each direction into one pass, about
  20x faster on CPU than depthwise_conv2d with this 23-tap kernel.
  """
  radius = max(kernel_size // 2, 1)
  offsets = tf.cast(tf.range(radius + 1), tf.float32)
  half = tf.exp(-tf.square(offsets) / (2.0 * tf.square(sigma)))
  half = tf.unstack(half / (2.0 * tf.reduce_sum(half) - half[0]))
  height, width = frames.shape[1], frames.shape[2]
  padded = tf.pad(frames, [[0, 0], [radius, radius], [radius, radius], [0, 0]],
                  mode='REFLECT')

  def along(x, axis, size):
    def shifted(i):
      begin = [0, 0, 0, 0]
      begin[axis] = radius + i
      shape = [-1, -1, -1, -1]
      shape[axis] = size
      return tf.slice(x, begin, shape)
    return half[0] * shifted(0) + tf.add_n(
        [half[i] * (shifted(-i) + shifted(i)) for i in range(1, radius + 1)])

  return along(along(padded, 2, width), 1, height)


def apply_pixels(frames, params: ClipParams, crop_size: int) -> tf.Tensor:
  """[T, S, S, 3] in [0, 255] (uint8 or float) -> flipped, jittered, ...
  float32 frames in [0, 1].

  Shapes are static here, so `apply_prepared_xla` compiles it once per clip
  shape.
  """
  frames = tf.cast(frames, tf.float32) / 255.0
  frames = tf.cond(params.flip, lambda: tf.reverse(frames, axis=[2]),
                   lambda: frames)
  frames = tf.cond(params.jitter, lambda: color_jitter(frames, params),
                   lambda: frames)
  frames = tf.cond(
      params.grayscale,
      lambda: tf.tile(tf.image.rgb_to_grayscale(frames), [1, 1, 1, 3]),
      lambda: frames)
  frames = tf.cond(
      params.blur,
      lambda: gaussian_blur(frames, params.sigma, crop_size // 10),
      lambda: frames)
  frames = tf.cond(params.solarize,
                   lambda: tf.where(frames < 0.5, frames, 1.0 - frames),
                   lambda: frames)
  return tf.clip_by_value(frames, 0.0, 1.0)


def apply_prepared(frames: tf.Tensor, params: tf.Tensor) -> tf.Tensor:
  """The per-pixel part of one view: [T, S, S, 3] in [0, 255] (the resized
  window) and packed params [P] (the clip's draw) or [T, P] (a draw per
  frame, each frame its own one-frame clip) -> float32 [T, S, S, 3] in
  [0, 1]."""
  crop_size = frames.shape[-2]
  if params.shape.rank == 1:
    return apply_pixels(frames, unpack_pixel_params(params), crop_size)
  return tf.map_fn(
      lambda args: apply_pixels(args[0][None], unpack_pixel_params(args[1]),
                                crop_size)[0],
      (frames, params),
      fn_output_signature=tf.TensorSpec(frames.shape[1:], tf.float32))


def apply_views(frames: tf.Tensor, params: tf.Tensor) -> tf.Tensor:
  """`apply_prepared` over a batch of resized views [N, T, S, S, 3] in [0,
  255] and their params [N, P] or [N, T, P] (host mode, after batching:
  one call a batch instead of one a clip)."""
  return tf.map_fn(lambda args: apply_prepared(args[0], args[1]),
                   (frames, params),
                   fn_output_signature=tf.TensorSpec(frames.shape[1:],
                                                     tf.float32))


def apply_batch(buffer: tf.Tensor, offsets: tf.Tensor, params: tf.Tensor,
                num_frames: int, crop_size: int, row_width: int,
                xla_gather: bool = False) -> tf.Tensor:
  """The device's part of N views (`augment_on: device`), in the train step
  under any strategy and inside XLA: each view's window read from the
  batch's buffer (`window_buffer`) and resized to crop_size, then the
  per-pixel work. offsets int32 [N] and params [N, W + P] (a draw a clip of
  num_frames frames) or [N, T] and [N, T, W + P] (a window and draw a frame)
  -> float32 [N, T, S, S, 3] in [0, 1]."""
  split = window_buffer.NUM_WINDOW_PARAMS
  per_frame = params.shape.rank == 3
  if per_frame:  # each frame a one-frame view of its own
    offsets = tf.reshape(offsets, [-1])
    params = tf.reshape(params, [-1, params.shape[-1]])
  frames = 1 if per_frame else num_frames

  def one(args):
    offset, row = args
    resized = window_buffer.resize_window(buffer, offset, row[:split], frames,
                                          row_width, crop_size, xla_gather)
    return apply_pixels(resized, unpack_pixel_params(row[split:]), crop_size)
  views = tf.map_fn(one, (offsets, params), fn_output_signature=tf.TensorSpec(
      [frames, crop_size, crop_size, 3], tf.float32))
  return tf.reshape(views, [-1, num_frames, crop_size, crop_size, 3])


# The dense per-pixel work fused by XLA: 3x faster colour jitter and the blur
# in one pass. Shapes are fixed, so each compiles once; a nested jit_compile
# function runs inside tf.data map functions and inside train steps.
# (Not reduce_retracing: the crop size is read from the static frame shape.)
apply_prepared_xla = tf.function(apply_prepared, jit_compile=True)
apply_batch_xla = tf.function(functools.partial(apply_batch, xla_gather=True),
                              jit_compile=True)
apply_views_xla = tf.function(apply_views, jit_compile=True)


def augmented(prepared: PreparedView, use_xla: bool = True) -> tf.Tensor:
  """Both parts on the spot: the view as the model sees it, float32."""
  apply = apply_prepared_xla if use_xla else apply_prepared
  return apply(prepared.frames, prepared.params)


def _window_frames(encoded, window, crop_size, cropped_decode_max_area,
                   frame_hw, defer_decode):
  """The host's pixels of a view: the window of every frame resized to
  float32 [T, S, S, 3] in [0, 255] and no draw; or, decoding deferred
  (`augment_on: device`), the encoded frames (checked) and the window's
  draw (window_buffer.DRAW_FIELDS, float32: `window_buffer.pack` decodes
  it after batching)."""
  if not defer_decode:
    return decoding.crop_resize(encoded, window, crop_size,
                                cropped_decode_max_area, frame_hw), None
  cropped = decoding.use_cropped_decode(window, cropped_decode_max_area,
                                        frame_hw)
  draw = tf.concat([window, tf.cast(cropped, tf.int32)[None]], 0)
  return decoding.check_image_format(encoded), tf.cast(draw, tf.float32)


def _prepared_view(frames, window_params, pixel_params) -> PreparedView:
  if window_params is None:
    return PreparedView(frames, pixel_params)
  return PreparedView(frames, tf.concat([window_params, pixel_params], 0))


def augment_clip(encoded: tf.Tensor, params: ClipParams, crop_size: int,
                 cropped_decode_max_area: float = 0.9,
                 use_xla: bool = True) -> tf.Tensor:
  """Encoded frames [T] -> float32 [T, S, S, 3] in [0, 1], every frame with
  the same `params` (the crop window's pixels only are decoded).

  cropped_decode_max_area: see VideoDataConfig; use_xla: fuse the per-pixel
  work with XLA (same result up to float rounding, faster).
  """
  frames = decoding.crop_resize(encoded, params.window, crop_size,
                                cropped_decode_max_area,
                                decoding.frame_shape(encoded[0]))
  return augmented(PreparedView(frames, pack_pixel_params(params)), use_xla)


def consistent_view(encoded: tf.Tensor, seed,
                    view: video_data.ViewAugmentationConfig, crop_size: int,
                    cropped_decode_max_area: float = 0.9,
                    defer_decode: bool = False) -> PreparedView:
  """Algorithm 1: one draw for the clip, applied to every frame."""
  frame_hw = decoding.frame_shape(encoded[0])
  params = draw_clip_params(seed, view, frame_hw)
  frames, window = _window_frames(encoded, params.window, crop_size,
                                  cropped_decode_max_area, frame_hw,
                                  defer_decode)
  return _prepared_view(frames, window, pack_pixel_params(params))


def per_frame_view(encoded: tf.Tensor, seed,
                   view: video_data.ViewAugmentationConfig, crop_size: int,
                   cropped_decode_max_area: float = 0.9,
                   defer_decode: bool = False) -> PreparedView:
  """Table 9 ablation: every frame draws its own parameters."""
  seeds = tf.random.experimental.stateless_split(seed, tf.shape(encoded)[0])

  def one(args):
    prepared = consistent_view(args[0][None], args[1], view, crop_size,
                               cropped_decode_max_area, defer_decode)
    return prepared.frames[0], prepared.params
  if defer_decode:
    shape, dtype = [], tf.string
    num_params = window_buffer.NUM_DRAW_FIELDS + NUM_PIXEL_PARAMS
  else:
    shape, dtype = [crop_size, crop_size, 3], tf.float32
    num_params = NUM_PIXEL_PARAMS
  frames, params = tf.map_fn(
      one, (encoded, seeds),
      fn_output_signature=(tf.TensorSpec(shape, dtype),
                           tf.TensorSpec([num_params], tf.float32)))
  return PreparedView(frames, params)


def centre_crop_view(encoded: tf.Tensor, seed,
                     view: video_data.ViewAugmentationConfig, crop_size: int,
                     cropped_decode_max_area: float = 0.9,
                     defer_decode: bool = False) -> PreparedView:
  """Table 9 ablation: the centre square resized, nothing random."""
  del seed, view
  frame_hw = decoding.frame_shape(encoded[0])
  window = centre_square_window(frame_hw[0], frame_hw[1])
  frames, window = _window_frames(encoded, window, crop_size,
                                  cropped_decode_max_area, frame_hw,
                                  defer_decode)
  return _prepared_view(frames, window,
                        tf.constant(IDENTITY_PIXEL_PARAMS, tf.float32))
