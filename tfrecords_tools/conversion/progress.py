"""Progress reporting: a bar with rate and ETA on a terminal, log lines otherwise."""

import sys
import time

from absl import logging

from cvrl.tasks.train_actions import format_duration as _duration


class Progress:
  """Counts finished items of a known total and reports rate and ETA.

  On a TTY the bar is redrawn in place at most 10 times a second; otherwise
  (CI logs, nohup, Dataflow workers) one log line every `log_every_s`.
  """

  def __init__(self, total: int, unit: str = 'videos', stream=None,
               log_every_s: float = 30.0, clock=time.monotonic):
    self.total = total
    self.done = 0
    self._unit = unit
    self._stream = stream if stream is not None else sys.stderr
    self._tty = hasattr(self._stream, 'isatty') and self._stream.isatty()
    self._log_every = log_every_s
    self._clock = clock
    self._start = clock()
    self._last_report = -1e9

  def line(self) -> str:
    elapsed = self._clock() - self._start
    rate = self.done / elapsed if elapsed > 0 else 0.0
    eta = (self.total - self.done) / rate if rate > 0 else float('inf')
    eta_text = _duration(eta) if rate > 0 else '?'
    pct = 100.0 * self.done / self.total if self.total else 100.0
    return (f'{self.done}/{self.total} {self._unit} ({pct:.0f}%) '
            f'{rate:.2f} {self._unit}/s elapsed {_duration(elapsed)} '
            f'ETA {eta_text}')

  def update(self, n: int = 1) -> None:
    self.done += n
    now = self._clock()
    finished = self.done >= self.total
    if self._tty:
      if finished or now - self._last_report >= 0.1:
        width = 30
        filled = int(width * self.done / max(1, self.total))
        bar = '#' * filled + '-' * (width - filled)
        self._stream.write(f'\r[{bar}] {self.line()}')
        if finished:
          self._stream.write('\n')
        self._stream.flush()
        self._last_report = now
    elif finished or now - self._last_report >= self._log_every:
      logging.info('progress: %s', self.line())
      self._last_report = now
