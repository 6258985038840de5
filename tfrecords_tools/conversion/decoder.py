"""Decoding one video file into upright RGB frames with PyAV.

Phases: open -> decode (presentation order) -> trim to a time window ->
resample the frame rate -> rotate upright and resize. Nothing here touches
TensorFlow, so worker processes stay light.

Two facts about real files drive the design:
- Phone videos carry a display matrix; PyAV reports it as `frame.rotation`
  (degrees counter-clockwise). We rotate each frame so it comes out upright.
- Timestamps are not trustworthy (AVI files often have non-monotonic or
  missing pts). The decoder already emits frames in presentation order, so we
  keep its output order and never sort by pts. Time for trimming uses pts when
  they increase and falls back to index / fps where they do not.
"""

import dataclasses
import math
from typing import List, Optional

import av
import numpy as np

# Statuses of a conversion, shared with the manifest.
OK = 'ok'
MISSING = 'missing'
CORRUPT = 'corrupt'
TOO_SHORT = 'too_short'
UNREADABLE = 'unreadable'
STATUSES = (OK, MISSING, CORRUPT, TOO_SHORT, UNREADABLE)

_DEFAULT_FPS = 25.0


@dataclasses.dataclass
class DecodeOptions:
  """How to decode.

  Attributes:
    fps: output frame rate; 0 keeps the source rate.
    short_side: resize so the shorter side is this many pixels; 0 keeps size.
    start_s: start of the window to keep, seconds; None keeps from the start.
    end_s: end of the window (exclusive), seconds; None keeps to the end.
  """
  fps: float = 0.0
  short_side: int = 256
  start_s: Optional[float] = None
  end_s: Optional[float] = None


@dataclasses.dataclass
class DecodedVideo:
  """Result of decoding: frames plus what happened.

  `frames` is a list of uint8 arrays [H, W, 3], upright, presentation order.
  `timestamps_us[i]` is the source presentation time of `frames[i]`.
  `error` holds the decoder's message when decoding stopped early; the frames
  decoded before it are still in `frames`.
  """
  frames: List[np.ndarray]
  timestamps_us: List[int]
  fps: float
  source_fps: float
  start_us: int
  end_us: int
  error: Optional[str] = None
  error_type: Optional[str] = None


class UnreadableVideoError(Exception):
  """The file exists but is not a video that PyAV can open."""


def output_size(width: int, height: int, short_side: int):
  """(width, height) after resizing the shorter side to `short_side`.

  The long side is rounded to the nearest pixel; 0 keeps the input size.
  """
  if short_side <= 0 or min(width, height) == short_side:
    return width, height
  scale = short_side / min(width, height)
  if width <= height:
    return short_side, max(1, int(round(height * scale)))
  return max(1, int(round(width * scale))), short_side


def _quarter_turns(rotation) -> int:
  """Counter-clockwise quarter turns that make a frame upright."""
  if not rotation:
    return 0
  return int(round(float(rotation) / 90.0)) % 4


def _frame_rotation(frame) -> int:
  # `VideoFrame.rotation` exists in PyAV >= 13; older versions cannot see the
  # display matrix and are treated as unrotated.
  return getattr(frame, 'rotation', 0) or 0


def _to_upright_rgb(frame, short_side: int) -> np.ndarray:
  turns = _quarter_turns(_frame_rotation(frame))
  # Size is computed in display orientation, then mapped back to storage
  # orientation so that swscale does the resize before the cheap rotation.
  disp_w, disp_h = frame.width, frame.height
  if turns % 2:
    disp_w, disp_h = disp_h, disp_w
  out_w, out_h = output_size(disp_w, disp_h, short_side)
  if turns % 2:
    out_w, out_h = out_h, out_w
  if (out_w, out_h) == (frame.width, frame.height):
    rgb = frame.to_ndarray(format='rgb24')
  else:
    rgb = frame.reformat(width=out_w, height=out_h, format='rgb24',
                         interpolation='AREA').to_ndarray()
  if turns:
    rgb = np.ascontiguousarray(np.rot90(rgb, k=turns))
  return rgb


def _stream_fps(stream) -> float:
  for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
    if rate:
      value = float(rate)
      if math.isfinite(value) and 0 < value < 1000:
        return value
  return _DEFAULT_FPS


class _Clock:
  """Presentation time of each decoded frame, robust to bad timestamps.

  Uses pts while they increase; once a pts goes backwards or is missing, later
  frames get previous time + 1 / fps, so trimming never reorders or skips.
  """

  def __init__(self, fps: float):
    self._step = 1.0 / fps
    self._last = None

  def time_of(self, frame) -> float:
    t = frame.time
    if t is None or (self._last is not None and t <= self._last):
      t = 0.0 if self._last is None else self._last + self._step
    self._last = t
    return t


def _source(path: str):
  """What PyAV opens: a local path as it is (FFmpeg reads it directly), a
  remote one (gs://...) as a seekable tf.io.gfile file object."""
  if '://' not in path:
    return path
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.io.gfile.GFile(path, 'rb')


def decode_video(path: str, options: DecodeOptions) -> DecodedVideo:
  """Decodes `path` into upright RGB frames.

  Args:
    path: a local file PyAV can open.
    options: window, frame rate and size.

  Returns:
    DecodedVideo. A decoding error mid-stream does not raise: the frames so
    far are returned with `error` set.

  Raises:
    FileNotFoundError: `path` does not exist.
    UnreadableVideoError: not a container PyAV opens, or no video stream.
  """
  try:
    container = av.open(_source(path))
  except FileNotFoundError:
    raise
  except (av.error.FFmpegError, OSError, ValueError) as e:
    raise UnreadableVideoError(f'{path}: cannot open: {e}') from e
  with container:
    if not container.streams.video:
      raise UnreadableVideoError(f'{path}: no video stream')
    stream = container.streams.video[0]
    stream.thread_type = 'AUTO'
    source_fps = _stream_fps(stream)
    out_fps = options.fps if options.fps > 0 else source_fps
    clock = _Clock(source_fps)
    start = options.start_s if options.start_s is not None else 0.0
    end = options.end_s if options.end_s is not None else math.inf
    if start > 0 and stream.time_base:
      # Seek to the keyframe before the window; frames before it are dropped
      # by the time test below. Seeking is best effort: some files refuse.
      try:
        container.seek(int(start / float(stream.time_base)), stream=stream,
                       backward=True, any_frame=False)
      except av.error.FFmpegError:
        container.seek(0)

    frames: List[np.ndarray] = []
    times: List[int] = []
    first_t = None
    next_out_t = None  # next output time when resampling
    error = error_type = None
    try:
      for frame in container.decode(stream):
        t = clock.time_of(frame)
        if t < start - 1e-6:
          continue
        if t >= end - 1e-6:
          break
        if first_t is None:
          first_t = t
          next_out_t = t
        if options.fps > 0:
          # Keep the frame whose time first reaches each output tick; repeat
          # it when the source rate is lower than the requested one.
          if t + 0.5 / source_fps < next_out_t:
            continue
          image = _to_upright_rgb(frame, options.short_side)
          while next_out_t <= t + 0.5 / source_fps:
            frames.append(image)
            times.append(int(round(t * 1e6)))
            next_out_t += 1.0 / out_fps
        else:
          frames.append(_to_upright_rgb(frame, options.short_side))
          times.append(int(round(t * 1e6)))
    except (av.error.FFmpegError, OSError, ValueError, RuntimeError) as e:
      error = f'{type(e).__name__}: {e}'
      error_type = type(e).__name__

  first_t = first_t if first_t is not None else start
  start_us = int(round(first_t * 1e6))
  end_us = int(round((first_t + len(frames) / out_fps) * 1e6))
  return DecodedVideo(frames=frames, timestamps_us=times, fps=float(out_fps),
                      source_fps=source_fps, start_us=start_us,
                      end_us=end_us, error=error, error_type=error_type)

