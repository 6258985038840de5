"""Where clips start: CVRL's temporal interval sampling and evaluation clips.

Paper section 3.3 / Figure 3: for a video of T frames, draw the gap t between
the two clip starts from P(t) over the valid range, then the first start
uniformly in [0, G - t] and the second exactly t frames after it. Here the
valid range is [0, G] with G = T - span, span = (num_frames - 1) * stride + 1,
so both clips always fit inside the video (when it is long enough).

All randomness is stateless: the same seed gives the same frame indices.
Frame indices are int32; videos shorter than a clip loop or pad.
"""

import tensorflow as tf


def clip_span(num_frames: int, stride: int) -> int:
  """Frames covered by one clip, first to last inclusive."""
  return (num_frames - 1) * stride + 1


def gap_weights(max_gap, shape: str, power: float) -> tf.Tensor:
  """Unnormalised P(t) for t = 0..max_gap, float32 [max_gap + 1].

  decreasing: (G + 1)^p - t^p, i.e. the paper's -t^p + c with c chosen so
    that every gap, the largest included, stays possible;
  increasing: (t + 1)^p (the paper's t^p + c with c = 1 frame);
  uniform: 1.
  """
  t = tf.cast(tf.range(max_gap + 1), tf.float32)
  if shape == 'decreasing':
    top = tf.cast(max_gap + 1, tf.float32)
    return tf.pow(top, power) - tf.pow(t, power)
  if shape == 'increasing':
    return tf.pow(t + 1.0, power)
  if shape == 'uniform':
    return tf.ones_like(t)
  raise ValueError(f'temporal.gap_shape={shape!r}: expected decreasing, '
                   'uniform or increasing')


def sample_gap(seed, max_gap, shape: str, power: float) -> tf.Tensor:
  """Draws one gap in [0, max_gap] from `gap_weights` (inverse CDF), int32."""
  weights = gap_weights(max_gap, shape, power)
  cdf = tf.math.cumsum(weights) / tf.reduce_sum(weights)
  u = tf.random.stateless_uniform([1], seed=seed, dtype=tf.float32)
  gap = tf.searchsorted(cdf, u, side='right')[0]
  return tf.minimum(tf.cast(gap, tf.int32), max_gap)


def uniform_int(seed, upper_inclusive) -> tf.Tensor:
  """A stateless uniform integer in [0, upper_inclusive], int32."""
  return tf.random.stateless_uniform(
      [], seed=seed, minval=0, maxval=upper_inclusive + 1, dtype=tf.int32)


def _starts_seeds(seed):
  """(gap, start, second-start) seeds of a pair, shared by both samplers so
  that the ablation draws its start exactly as the paper's sampler does."""
  return tf.unstack(tf.random.experimental.stateless_split(seed, 3))


def two_clip_starts(seed, video_length, num_frames: int, stride: int,
                    shape: str = 'decreasing', power: float = 1.0):
  """Start frames of the two clips of a positive pair (paper section 3.3).

  Args:
    seed: stateless seed, shape [2].
    video_length: frames in the video, scalar int.
    num_frames: frames per clip.
    stride: temporal stride within a clip.
    shape: gap distribution, see `gap_weights`.
    power: exponent p of the distribution.

  Returns:
    (start_1, start_2, gap), int32 scalars with start_2 = start_1 + gap.
    A video shorter than one clip span gets two independent starts, each
    uniform over its frames (the clips loop, see `clip_indices`), as the
    authors' release does; then gap = start_2 - start_1 may be negative.
  """
  video_length = tf.cast(video_length, tf.int32)
  max_gap = tf.maximum(video_length - clip_span(num_frames, stride), 0)
  gap_seed, start_seed, short_seed = _starts_seeds(seed)
  gap = sample_gap(gap_seed, max_gap, shape, power)
  start_1 = uniform_int(start_seed, max_gap - gap)
  start_2 = start_1 + gap
  short = video_length < clip_span(num_frames, stride)
  last_frame = tf.maximum(video_length - 1, 0)
  start_1 = tf.where(short, uniform_int(start_seed, last_frame), start_1)
  start_2 = tf.where(short, uniform_int(short_seed, last_frame), start_2)
  return start_1, start_2, start_2 - start_1


def same_starts(seed, video_length, num_frames: int, stride: int):
  """Table 9 ablation (no temporal augmentation): both clips start at one
  uniformly drawn frame. Returns (start, start, 0)."""
  video_length = tf.cast(video_length, tf.int32)
  max_gap = tf.maximum(video_length - clip_span(num_frames, stride), 0)
  _, start_seed, _ = _starts_seeds(seed)
  short = video_length < clip_span(num_frames, stride)
  start = tf.where(short,
                   uniform_int(start_seed, tf.maximum(video_length - 1, 0)),
                   uniform_int(start_seed, max_gap))
  return start, start, tf.constant(0, tf.int32)


def random_order(seed, first, second):
  """(first, second) or (second, first), each with probability 1/2.

  The release shuffles the pair, so the earlier clip is view 1 only half
  the time; it matters when the two views are augmented differently.
  """
  swap = tf.random.stateless_uniform([], seed=seed) < 0.5
  return tf.where(swap, second, first), tf.where(swap, first, second)


def clip_indices(start, video_length, num_frames: int, stride: int,
                 short_video: str = 'loop') -> tf.Tensor:
  """Frame indices start, start + stride, ..., int32 [num_frames].

  Indices past the end loop back to the start ('loop') or repeat the last
  frame ('pad'), so short videos never fail.
  """
  indices = start + tf.range(num_frames, dtype=tf.int32) * stride
  video_length = tf.maximum(tf.cast(video_length, tf.int32), 1)
  if short_video == 'loop':
    return tf.math.floormod(indices, video_length)
  if short_video == 'pad':
    return tf.minimum(indices, video_length - 1)
  raise ValueError(f'temporal.short_video={short_video!r}: expected loop or pad')


def evenly_spaced_starts(video_length, num_clips: int, num_frames: int,
                         stride: int) -> tf.Tensor:
  """Starts of `num_clips` clips spread evenly over the video, int32 [n].

  The first clip starts at frame 0 and the last ends at the last frame (when
  the video is long enough), as in the 10-clip test protocol.
  """
  max_start = tf.maximum(
      tf.cast(video_length, tf.int32) - clip_span(num_frames, stride), 0)
  starts = tf.linspace(0.0, tf.cast(max_start, tf.float32), num_clips)
  return tf.cast(tf.round(starts), tf.int32)


def random_start(seed, video_length, num_frames: int, stride: int):
  """One clip start uniform over the positions where the clip fits, int32."""
  max_start = tf.maximum(
      tf.cast(video_length, tf.int32) - clip_span(num_frames, stride), 0)
  return uniform_int(seed, max_start)
