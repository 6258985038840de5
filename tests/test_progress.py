"""Progress: tqdm's bar on a TTY, log lines with rate and ETA otherwise."""

import io

from absl.testing import absltest

from cvrl import progress


class _Tty(io.StringIO):

  def isatty(self):
    return True


class _Clock:

  def __init__(self):
    self.now = 100.0

  def __call__(self):
    return self.now


def test_a_tty_gets_tqdm_bar_and_no_log_lines():
  clock, out = _Clock(), _Tty()
  with absltest.mock.patch.object(progress.logging, 'info') as info:
    with progress.Progress(10, stream=out, clock=clock) as bar:
      clock.now += 4.0
      bar.update(2)
      bar.update(8)
    assert info.call_count == 0
  text = out.getvalue()
  assert '\r' in text and '10/10' in text and 'videos' in text
  assert text.endswith('\n')  # closed when the total is reached


def test_the_log_line_says_rate_and_eta():
  clock = _Clock()
  bar = progress.Progress(10, stream=io.StringIO(), clock=clock)
  clock.now += 4.0
  bar.done = 2  # 2 videos in 4 s: 0.5/s, 8 left -> 16 s
  assert bar.line() == '2/10 videos (20%) 0.50 videos/s elapsed 0m04s ETA 0m16s'


def test_log_lines_when_not_a_tty():
  clock, out = _Clock(), io.StringIO()
  bar = progress.Progress(100, stream=out, clock=clock, log_every_s=30)
  with absltest.mock.patch.object(progress.logging, 'info') as info:
    for _ in range(10):
      clock.now += 1.0
      bar.update()
    assert info.call_count == 1  # the first update, then not before 30 s
    clock.now += 30.0
    bar.update()
    assert info.call_count == 2
    assert '11/100 videos' in info.call_args[0][1]
  assert out.getvalue() == ''  # nothing drawn on a non-terminal
