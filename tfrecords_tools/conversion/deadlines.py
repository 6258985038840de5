"""How long a worker may spend on one video, scaled by the video's length.

A video that never finishes (a decoder loop on a damaged file, a remote
read that stalls, a native wait that never ends) would otherwise hold its
worker, and the ordered results behind it, forever. Each task run in a
conversion worker (`worker_pool`: the local pool and the Beam runner's
isolated worker) arms the process's alarm clock: `base_s` to open the file,
then, once the decoder knows how many seconds of video it will convert
(the task's window, else the container's duration), `base_s +
per_second_s` x those seconds from there. When the time is up the kernel
ends the worker with SIGALRM. That needs no Python and no lock, so it also
ends a worker stuck in native code that holds the GIL. The pool sees a
process killed by SIGALRM and reports a timeout (`worker_pool.TIMED_OUT`):
the video is tried once more alone, then recorded with status `timeout`.

Only workers arm the alarm: converting in the job's own process
(`--workers=1`) has no deadline, since the alarm would end the job.
"""

import dataclasses
import math
import signal
from typing import Optional

# Seconds of video assumed when the container does not say its duration.
UNKNOWN_DURATION_S = 600.0


@dataclasses.dataclass(frozen=True)
class Deadline:
  """A video's time limit in a worker.

  Attributes:
    base_s: seconds to open the file and find its duration; also added to
      the time the video's length allows.
    per_second_s: seconds allowed per second of video converted (0 with
      base_s: a fixed limit).
  """
  base_s: float = 120.0
  per_second_s: float = 10.0

  def seconds(self, video_s: Optional[float]) -> float:
    """The limit, counted from the file's opening, for `video_s` seconds of
    video (None: not known)."""
    if video_s is None or not math.isfinite(video_s) or video_s < 0:
      video_s = UNKNOWN_DURATION_S
    return self.base_s + self.per_second_s * video_s

  def describe(self) -> str:
    if self.per_second_s:
      return f'{self.base_s:g} s + {self.per_second_s:g} s a second of video'
    return f'{self.base_s:g} s'


DEFAULT = Deadline()

_active: Optional[Deadline] = None


def parse(text: str) -> Optional[Deadline]:
  """The --deadline flag: 'auto' (DEFAULT), 'none', or seconds (fixed).

  Raises:
    ValueError: anything else, naming what is expected.
  """
  value = text.strip().lower()
  if value == 'auto':
    return DEFAULT
  if value == 'none':
    return None
  try:
    seconds = float(value)
  except ValueError:
    seconds = -1.0
  if not math.isfinite(seconds) or seconds <= 0:
    raise ValueError(f"--deadline={text!r}: expected 'auto' "
                     f'({DEFAULT.describe()}), \'none\' or a number of '
                     'seconds > 0')
  return Deadline(base_s=seconds, per_second_s=0.0)


def _arm(seconds: float) -> None:
  # alarm() takes whole seconds; 0 would cancel it.
  signal.alarm(max(1, int(math.ceil(seconds))))


def run(fn, task, options, deadline: Optional[Deadline]):
  """fn(task, options) under `deadline` (None: no limit). Call only in a
  worker process's main thread: when the time is up the process ends."""
  global _active
  if deadline is None:
    return fn(task, options)
  _active = deadline
  _arm(deadline.base_s)
  try:
    return fn(task, options)
  finally:
    signal.alarm(0)
    _active = None


def video_opened(video_s: Optional[float]) -> None:
  """Called by the decoder once it knows how many seconds of video it will
  convert: the deadline becomes what that length allows, from now."""
  if _active is not None:
    _arm(_active.seconds(video_s))
