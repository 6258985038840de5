"""Decoding phase: from a record's encoded frames to pixels.

Validation (a record without frames, a frame that is neither JPEG nor PNG)
fails naming the feature; JPEG frames decode only the window a clip needs
(`decode_and_crop_jpeg`: libjpeg skips the rows outside it). Callers:
`video_sources` (check_frames), the Algorithm 1 views (`spatial_augment`) and
the evaluation views (`eval_views`).
"""

import tensorflow as tf

from cvrl.data import features

_JPEG_MAGIC = b'\xff\xd8\xff'
_PNG_MAGIC = b'\x89PN'


def check_frames(frames: tf.Tensor) -> tf.Tensor:
  """Fails, naming the feature, when a record has no frames."""
  with tf.control_dependencies([tf.debugging.assert_greater(
      tf.size(frames), 0,
      message=f'sequence feature {features.IMAGE_KEY!r} is missing or empty '
      'in this record')]):
    return tf.identity(frames)


def _named(fn):
  """Runs `fn` under a name scope of the feature key: a decoding error then
  names the feature (the failing node is 'image/encoded/...')."""
  def wrapped(*args):
    with tf.name_scope(features.IMAGE_KEY):
      return fn(*args)
  return wrapped


def check_image_format(encoded: tf.Tensor) -> tf.Tensor:
  """Fails, naming the feature and frame, unless every frame is JPEG or PNG."""
  heads = tf.strings.substr(encoded, 0, 3)
  known = tf.equal(heads, _JPEG_MAGIC) | tf.equal(heads, _PNG_MAGIC)
  bad = tf.cast(tf.argmin(tf.cast(known, tf.int32)), tf.int32)
  with tf.control_dependencies([tf.debugging.Assert(
      tf.reduce_all(known),
      [f'a frame of sequence feature {features.IMAGE_KEY!r} is neither JPEG '
       'nor PNG; first bad frame of this clip:', bad])]):
    return tf.identity(encoded)


def frame_shape(encoded_frame: tf.Tensor) -> tf.Tensor:
  """[height, width] of an encoded frame, from its header when it is a JPEG."""
  is_jpeg = tf.equal(tf.strings.substr(encoded_frame, 0, 3), _JPEG_MAGIC)
  return tf.cond(
      is_jpeg,
      _named(lambda: tf.image.extract_jpeg_shape(encoded_frame)[:2]),
      _named(lambda: tf.shape(tf.io.decode_image(
          encoded_frame, channels=3, expand_animations=False))[:2]))


def decode_frames(encoded: tf.Tensor) -> tf.Tensor:
  """Whole frames, uint8 [T, H, W, 3] (JPEG or PNG)."""
  encoded = check_image_format(encoded)
  return tf.map_fn(
      _named(lambda f: tf.io.decode_image(f, channels=3,
                                          expand_animations=False)),
      encoded, fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8))


def _each_frame(fn, encoded: tf.Tensor) -> tf.Tensor:
  """fn over the frames of a clip -> uint8 [T, h, w, 3]. Unrolled when the
  clip's length is static (the pipelines' clips are): no while loop, and
  the frames' decodes are independent ops the executor may run in
  parallel; a loop otherwise."""
  length = encoded.shape[0]
  if length is not None:
    return tf.stack([fn(encoded[i]) for i in range(length)])
  return tf.map_fn(fn, encoded, fn_output_signature=tf.TensorSpec(
      [None, None, 3], tf.uint8))


def _whole_then_window(frame: tf.Tensor, window) -> tf.Tensor:
  """Any format: the whole frame decoded, then its [y, x, h, w] window."""
  image = tf.io.decode_image(frame, channels=3, expand_animations=False)
  return tf.slice(image, [window[0], window[1], 0], [window[2], window[3], 3])


def _window_alone(frame: tf.Tensor, window) -> tf.Tensor:
  """A JPEG's [y, x, h, w] window decoded alone."""
  return tf.image.decode_and_crop_jpeg(frame, window, channels=3)


def decode_window(encoded: tf.Tensor, window, use_cropped_decode) -> tf.Tensor:
  """Decodes the [y, x, h, w] window of every frame: uint8 [T, h, w, 3].

  JPEG frames decode only the window when `use_cropped_decode` (libjpeg
  skips the rows outside it); other formats (PNG from TFDS) decode whole.
  The choice is made once per clip.
  """
  encoded = check_image_format(encoded)
  all_jpeg = tf.reduce_all(
      tf.equal(tf.strings.substr(encoded, 0, 3), _JPEG_MAGIC))

  return tf.cond(
      all_jpeg & use_cropped_decode,
      _named(lambda: _each_frame(lambda f: _window_alone(f, window), encoded)),
      _named(lambda: _each_frame(lambda f: _whole_then_window(f, window),
                                 encoded)))


def decode_frame_window(frame: tf.Tensor, window, use_cropped_decode
                        ) -> tf.Tensor:
  """One frame's [y, x, h, w] window, uint8 [h, w, 3]: a JPEG decodes the
  window alone when `use_cropped_decode`, as `decode_window` does for a
  clip (the clip's frames were checked by `check_image_format`)."""
  is_jpeg = tf.equal(tf.strings.substr(frame, 0, 3), _JPEG_MAGIC)
  return tf.cond(is_jpeg & use_cropped_decode,
                 _named(lambda: _window_alone(frame, window)),
                 _named(lambda: _whole_then_window(frame, window)))


def use_cropped_decode(window, cropped_decode_max_area: float,
                       frame_hw) -> tf.Tensor:
  """Whether a window decodes alone: smaller than `cropped_decode_max_area`
  of the frame (above it, decoding the whole frame costs no more)."""
  area = tf.cast(window[2] * window[3], tf.float32)
  full = tf.cast(frame_hw[0] * frame_hw[1], tf.float32)
  return area < cropped_decode_max_area * full


def decode_crop(encoded, window, cropped_decode_max_area: float,
                frame_hw) -> tf.Tensor:
  """The [y, x, h, w] window of every frame, uint8 [T, h, w, 3]: decoded
  alone when it is smaller than `cropped_decode_max_area` of the frame,
  else cut from the whole decoded frames."""
  return decode_window(encoded, window, use_cropped_decode(
      window, cropped_decode_max_area, frame_hw))


def crop_resize(encoded, window, crop_size: int,
                cropped_decode_max_area: float, frame_hw) -> tf.Tensor:
  """Decodes the window of each frame and resizes: float32 [T, S, S, 3].

  Values stay in [0, 255] (bilinear never leaves the input range); scaling
  to [0, 1] happens with the per-pixel work (`spatial_augment.apply_pixels`).
  """
  images = decode_crop(encoded, window, cropped_decode_max_area, frame_hw)
  return tf.image.resize(images, [crop_size, crop_size], method='bilinear')
