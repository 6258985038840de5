"""Progress: a redrawn bar with rate and ETA on a TTY, log lines otherwise."""

import io

from absl.testing import absltest

from tfrecords_tools.conversion import progress


class _Tty(io.StringIO):

  def isatty(self):
    return True


class _Clock:

  def __init__(self):
    self.now = 100.0

  def __call__(self):
    return self.now


def test_bar_shows_rate_and_eta_on_a_tty():
  clock, out = _Clock(), _Tty()
  bar = progress.Progress(10, stream=out, clock=clock)
  clock.now += 4.0
  bar.update(2)  # 2 videos in 4 s: 0.5/s, 8 left -> 16 s
  text = out.getvalue()
  assert text.startswith('\r[######') and '2/10 videos (20%)' in text
  assert '0.50 videos/s' in text and 'ETA 0m16s' in text
  clock.now += 16.0
  bar.update(8)
  assert out.getvalue().endswith('ETA 0m00s\n')


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
