"""The preemption guard alone: what a signal does to the process, the exit
status it leads to, and where an evaluation stops."""

import os
import signal

import pytest
import tensorflow as tf

from cvrl.tasks import preemption


def test_the_exit_status_is_the_shells_for_the_signal():
  # A shell reports a process ended by signal N as 128 + N.
  assert preemption.exit_status('SIGTERM') == 143
  assert preemption.exit_status('SIGINT') == 130


def test_signals_are_recorded_and_repeats_ignored():
  lines = []
  before = signal.getsignal(signal.SIGTERM)
  before_int = signal.getsignal(signal.SIGINT)
  with preemption.Guard(printer=lambda *a, **k: lines.append(a[0])) as guard:
    os.kill(os.getpid(), signal.SIGTERM)
    os.kill(os.getpid(), signal.SIGTERM)  # the process survives it
    os.kill(os.getpid(), signal.SIGINT)
    assert guard.requested and guard.signal_name == 'SIGTERM'
  assert 'SIGTERM received' in lines[0]
  assert [l.split(':')[1].strip() for l in lines[1:]] == [
      'SIGTERM ignored', 'SIGINT ignored']
  # The job is stopping: until it exits, further signals are ignored.
  assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
  signal.signal(signal.SIGTERM, before)
  signal.signal(signal.SIGINT, before_int)
  with preemption.Guard(printer=lambda *a, **k: None):
    pass
  assert signal.getsignal(signal.SIGTERM) == before  # no signal: put back


def _counting_steps(data, guard, after):
  """An eval step over `data` that raises the guard's signal after
  `after` batches (as a signal arriving mid-batch would)."""
  seen = []

  def step(iterator):
    seen.append(int(next(iterator)))
    if len(seen) == after:
      os.kill(os.getpid(), signal.SIGTERM)
    return seen[-1]
  return step, seen, iter(tf.data.Dataset.from_tensor_slices(data))


@pytest.mark.parametrize('num_steps', [-1, 5])
def test_an_evaluation_stops_between_batches(num_steps):
  with preemption.Guard(printer=lambda *a, **k: None) as guard:
    step, seen, iterator = _counting_steps(list(range(8)), guard, after=2)
    loop = preemption.stoppable_eval_loop_fn(step, guard)
    with pytest.raises(preemption.Preempted, match='SIGTERM'):
      loop(iterator, num_steps, state=0, reduce_fn=lambda s, o: s + o)
  assert seen == [0, 1]  # the batch in flight finished, no other began


def test_without_a_signal_the_evaluation_runs_to_the_end():
  with preemption.Guard(printer=lambda *a, **k: None) as guard:
    step, seen, iterator = _counting_steps(list(range(4)), guard, after=99)
    loop = preemption.stoppable_eval_loop_fn(step, guard)
    assert loop(iterator, -1, state=0, reduce_fn=lambda s, o: s + o) == 6
    assert seen == [0, 1, 2, 3]
    step, seen, iterator = _counting_steps(list(range(4)), guard, after=99)
    assert loop(iterator, 3, state=0, reduce_fn=lambda s, o: s + o) == 3
