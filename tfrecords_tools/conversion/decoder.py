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
from typing import Any, Callable, List, Optional

import av
import numpy as np

from tfrecords_tools.conversion import deadlines

# Statuses of a conversion, shared with the manifest.
OK = 'ok'
MISSING = 'missing'
CORRUPT = 'corrupt'
TOO_SHORT = 'too_short'
UNREADABLE = 'unreadable'
# The conversion process died on this input twice (conversion.worker_pool).
WORKER_DIED = 'worker_died'
# The conversion passed its deadline twice (conversion.deadlines).
TIMEOUT = 'timeout'
STATUSES = (OK, MISSING, CORRUPT, TOO_SHORT, UNREADABLE, WORKER_DIED,
            TIMEOUT)

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

  `frames` is a list of uint8 arrays [H, W, 3], upright, presentation order
  (or what `decode_video`'s `frame_fn` made of each: JPEG bytes in the
  converters, so a long video never sits in memory as raw frames).
  `timestamps_us[i]` is the source presentation time of `frames[i]`;
  `height`, `width` the size of the upright frames.
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
  height: int = 0
  width: int = 0


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


def _seconds_to_convert(container, stream, start: float,
                        end: float) -> Optional[float]:
  """Seconds of video in the window [start, end), as far as the
  container's header tells (None when it does not and end is open)."""
  duration = None
  if container.duration:
    duration = container.duration / av.time_base
  elif stream.duration and stream.time_base:
    duration = float(stream.duration * stream.time_base)
  if duration is not None:
    end = min(end, duration)
  if not math.isfinite(end):
    return None
  return max(0.0, end - start)


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


_EPS = 1e-6  # seconds: timestamps this close count as equal


class _OnScreenSampler:
  """Frames of the window [start, end) as a viewer sees them.

  Output time k is origin + k / fps; its frame is the one on screen then:
  the last source frame whose timestamp is at or before it (a low-rate
  source repeats, a high-rate one skips). The origin is `start` when a
  frame is already on screen there (decoding began before it, at the
  keyframe the seek found), else the first frame's time. Without an output
  rate (fps None) every source frame in the window is kept, preceded by the
  frame on screen at `start` if none falls exactly there. The last frame
  stays on screen for one source frame period.
  """

  def __init__(self, start, end, source_fps, fps, to_rgb, frames, times):
    self.origin = None
    self._start, self._end = start, end
    self._period = 1.0 / source_fps
    self._step = 1.0 / fps if fps else None
    self._to_rgb = to_rgb
    self._frames, self._times = frames, times
    self._held = None  # (time, frame, rgb or None): on screen until the next
    self._tick = None

  def _emit(self):
    # A source frame repeated at several output times is converted once.
    t, frame, rgb = self._held
    if rgb is None:
      rgb = self._to_rgb(frame)
      self._held = (t, frame, rgb)
    self._frames.append(rgb)
    self._times.append(int(round(t * 1e6)))

  def _begin(self, t):
    self.origin = self._start if self._held is not None else t
    self._tick = self.origin

  def add(self, t: float, frame) -> bool:
    """Takes the next decoded frame; False once past the window."""
    if t < self._start - _EPS:
      self._held = (t, frame, None)  # may be on screen at start
      return True
    if self.origin is None:
      if self._held is not None and t <= self._start + _EPS:
        self._held = None  # a frame exactly at start replaces it
      self._begin(t)
    if self._step is None:
      if self._held is not None and t < self._end - _EPS:
        self._emit()  # the frame on screen at start, then the window's
        self._held = None
    else:
      while (self._tick < t - _EPS and self._tick < self._end - _EPS
             and self._held is not None):
        self._emit()
        self._tick += self._step
    if t >= self._end - _EPS:
      return False
    if self._step is None:
      self._held = (t, frame, None)
      self._emit()
      self._held = None
    else:
      self._held = (t, frame, None)
    return True

  def finish(self) -> None:
    """Emits the ticks the last frame is still on screen for."""
    if self._held is None:
      return
    last_t = self._held[0]
    if self.origin is None:  # every frame came before start
      if last_t + self._period <= self._start + _EPS:
        return
      self._begin(last_t)
      if self._step is None:
        self._emit()
        return
    if self._step is None:
      return
    limit = min(self._end, last_t + self._period)
    while self._tick < limit - _EPS:
      self._emit()
      self._tick += self._step


def decode_video(path: str, options: DecodeOptions,
                 frame_fn: Optional[Callable[[np.ndarray], Any]] = None
                 ) -> DecodedVideo:
  """Decodes `path` into upright RGB frames.

  Args:
    path: a local file PyAV can open, or a remote one (gs://...).
    options: window, frame rate and size.
    frame_fn: applied to each upright RGB frame as it is decoded (e.g. JPEG
      encoding); the result is kept instead of the frame, so memory holds
      one raw frame at a time, not the video.

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
    # A worker's deadline follows the length of what is converted.
    deadlines.video_opened(_seconds_to_convert(container, stream, start, end))
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
    error = error_type = None
    size = []

    def convert(frame):
      rgb = _to_upright_rgb(frame, options.short_side)
      if not size:
        size.extend(rgb.shape[:2])
      return frame_fn(rgb) if frame_fn else rgb
    sampler = _OnScreenSampler(start, end, source_fps,
                               options.fps if options.fps > 0 else None,
                               convert, frames, times)
    try:
      for frame in container.decode(stream):
        if not sampler.add(clock.time_of(frame), frame):
          break
    except (av.error.FFmpegError, OSError, ValueError, RuntimeError) as e:
      error = f'{type(e).__name__}: {e}'
      error_type = type(e).__name__
    sampler.finish()  # inside the container: the held frame is still valid

  first_t = sampler.origin
  first_t = first_t if first_t is not None else start
  start_us = int(round(first_t * 1e6))
  end_us = int(round((first_t + len(frames) / out_fps) * 1e6))
  return DecodedVideo(frames=frames, timestamps_us=times, fps=float(out_fps),
                      source_fps=source_fps, start_us=start_us,
                      end_us=end_us, error=error, error_type=error_type,
                      height=size[0] if size else 0,
                      width=size[1] if size else 0)

