"""Progress of a job with a known total: tqdm's bar on a terminal, a log
line every 30 s otherwise (CI logs, nohup, Dataflow workers), where tqdm's
carriage-return redraws would pile up into one unreadable line
(`benchmarks/progress_output.py`, docs/dependencies.md).

Used by the converters and by feature export.
"""

import sys
import time

from absl import logging
import tqdm

from cvrl.tasks.train_actions import format_duration as _duration


class Progress:
  """Counts finished items of a known total and reports rate and ETA."""

  def __init__(self, total: int, unit: str = 'videos', stream=None,
               log_every_s: float = 30.0, clock=time.monotonic,
               desc: str = ''):
    self.total = total
    self.done = 0
    self._unit = unit
    self._stream = stream if stream is not None else sys.stderr
    self._tty = hasattr(self._stream, 'isatty') and self._stream.isatty()
    self._log_every = log_every_s
    self._clock = clock
    self._start = clock()
    self._last_report = -1e9
    self._bar = (tqdm.tqdm(total=total, unit=unit, desc=desc or None,
                           file=self._stream, mininterval=0.1)
                 if self._tty else None)

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
    if self._bar is not None:
      self._bar.update(n)
      if self.done >= self.total:
        self.close()
      return
    now = self._clock()
    if self.done >= self.total or now - self._last_report >= self._log_every:
      logging.info('progress: %s', self.line())
      self._last_report = now

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()
      self._bar = None

  def __enter__(self):
    return self

  def __exit__(self, *unused):
    self.close()
