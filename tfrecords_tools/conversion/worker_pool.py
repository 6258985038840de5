"""Conversion workers that may die or hang: results in input order, whatever
happens.

A conversion runs for hours on a pool of processes, and a task can go wrong
under it: the kernel's OOM killer, a codec's segfault, a stray SIGKILL, or a
video (or a gs:// read) that never returns. `multiprocessing.Pool.imap`
then waits forever. Here (`ordered_results`; `Isolated` for one task at a
time, the Beam runner's), on `pebble`'s process pool, which knows which task
a dead worker held:

  - tasks run on `workers` processes, at most a small window ahead of the
    task the caller consumes, so results of a slow video do not pile up
    behind it;
  - a task bounds its own time with the process's alarm clock
    (`deadlines`): a worker ended by SIGALRM is a timeout, any other death
    a death;
  - a task whose worker died or timed out is run once more alone, in a
    process of its own (an OOM kill may have been caused by the
    neighbours; a stall by a passing network fault);
  - if that fails too, `on_failure(task, outcome, description)` makes its
    result (a manifest row `worker_died` or `timeout`), and the job goes on.

Start method: workers are *spawned* (a fresh interpreter), never forked.
The parent has usually started threads before it converts: TensorFlow's
(every command imports it), and FFmpeg's own. A forked child inherits their
locks and state but not the threads: swscale's slice-thread pool, created by
a `frame.reformat` in the parent, makes a forked child's `reformat` wait on a
condition variable forever (seen with PyAV 18.1.1 / FFmpeg 8 / libswscale
9.5 on an Intel Xeon; the same code passed on an AMD EPYC). A spawned worker
shares nothing with the parent but the pickled task. Its cost is the
imports, once per worker (not per video): measured in docs/benchmarks.md.
"""

import concurrent.futures
import multiprocessing
import signal
from typing import Callable, Iterable, Iterator

from absl import logging
import pebble

# Spawned, not forked: see the module doc. tests/test_conversion_faults.py
# asserts it, and reproduces the hang that forking caused.
START_METHOD = 'spawn'
_CONTEXT = multiprocessing.get_context(START_METHOD)

# What `on_failure` is told happened to a task (its second try included).
DIED = 'died'
TIMED_OUT = 'timeout'


class WorkersCannotStart(RuntimeError):
  """Every worker of the pool ended before it could take a task."""


_CANNOT_START = (
    'the conversion workers could not start: each one ended before taking '
    'a task (its error output is above). Workers are spawned, and a spawned '
    "worker imports the program's main module: a script that converts with "
    "more than one worker must do so under `if __name__ == '__main__':`, "
    "as Python's spawn start method requires")


def describe_exit(exitcode) -> str:
  """'killed by SIGKILL' / 'exited with status 3' for a process exit code."""
  if exitcode is None:
    return 'did not exit'
  if exitcode < 0:
    try:
      return f'killed by {signal.Signals(-exitcode).name}'
    except ValueError:
      return f'killed by signal {-exitcode}'
  return f'exited with status {exitcode}'


def new_pool(workers: int) -> pebble.ProcessPool:
  """A pool of `workers` spawned processes (see the module doc)."""
  return pebble.ProcessPool(max_workers=max(1, workers), context=_CONTEXT)


def close_pool(pool: pebble.ProcessPool, kill: bool) -> None:
  """Ends the pool: waits for its workers, or kills them first (a
  generator closed early, an exception). Joined either way, so nothing is
  left to shut down at interpreter exit."""
  if kill:
    pool.stop()
  else:
    pool.close()
  pool.join()


def _outcome(future):
  """(None, value) for a task that returned; (DIED or TIMED_OUT, what
  happened) for one whose process died, by SIGALRM for a timeout. An
  exception that the task raised is raised here."""
  try:
    return None, future.result()
  except pebble.ProcessExpired as e:
    if e.exitcode == -signal.SIGALRM:
      return TIMED_OUT, 'ran past its deadline'
    return DIED, describe_exit(e.exitcode)
  except concurrent.futures.process.BrokenProcessPool as e:
    raise WorkersCannotStart(_CANNOT_START) from e


def run_alone(fn: Callable, task):
  """fn(task) in a process of its own: (None, value), or (DIED/TIMED_OUT,
  what happened)."""
  pool = new_pool(1)
  try:
    return _outcome(pool.schedule(fn, args=(task,)))
  finally:
    close_pool(pool, kill=True)


def ordered_results(fn: Callable, tasks: Iterable, workers: int,
                    on_failure: Callable[[object, str, str], object],
                    window: int = 0) -> Iterator:
  """fn(task) for every task, in order (see the module doc).

  Args:
    fn: a picklable callable, expected not to raise (an exception it raises
      is re-raised here).
    tasks: the inputs, consumed lazily.
    workers: processes converting at once.
    on_failure: (task, DIED or TIMED_OUT, description) -> the result to
      yield for a task that failed twice.
    window: tasks in flight at most (default 2 * workers + 2).
  """
  window = window or 2 * workers + 2
  in_flight = []
  tasks = iter(tasks)
  pool = new_pool(workers)
  finished = False

  def fill():
    for task in tasks:
      in_flight.append((task, pool.schedule(fn, args=(task,))))
      if len(in_flight) >= window:
        return

  try:
    fill()
    while in_flight:
      task, future = in_flight.pop(0)
      failure, value = _outcome(future)
      if failure:
        value = _second_try(fn, task, failure, value, on_failure)
      yield value
      fill()
    finished = True
  except concurrent.futures.process.BrokenProcessPool as e:
    raise WorkersCannotStart(_CANNOT_START) from e
  finally:
    close_pool(pool, kill=not finished)


class Isolated:
  """One task at a time in a worker process kept between tasks, with the
  pool's retry-alone-then-report rule: the Beam runner's per-video call, so
  that a video that kills or stalls its decoder is a manifest row, not a
  failed bundle (and, after Beam's retries, a failed job)."""

  def __init__(self):
    self._pool = None

  def run(self, fn: Callable, task,
          on_failure: Callable[[object, str, str], object]):
    if self._pool is None:
      self._pool = new_pool(1)
    failure, value = _outcome(self._pool.schedule(fn, args=(task,)))
    if failure:
      value = _second_try(fn, task, failure, value, on_failure)
    return value

  def close(self) -> None:
    if self._pool is not None:
      close_pool(self._pool, kill=True)
      self._pool = None


def _second_try(fn, task, failure, first, on_failure):
  """The value for a task that failed once: its own in a process alone,
  else `on_failure`'s."""
  if failure == DIED:
    logging.warning('a conversion worker died (%s): its task is run again '
                    'alone', first)
  else:
    logging.warning('a conversion task %s: its worker was ended and the '
                    'task is run again alone', first)
  again, value = run_alone(fn, task)
  if not again:
    return value
  if again == DIED:
    description = (f'the conversion process {value} on this input, twice '
                   '(once in the pool, once alone)')
  else:
    description = (f'the conversion {value}, twice (once in the pool, once '
                   'alone)')
  logging.warning('%s', description)
  return on_failure(task, again, description)


def map_in_order(fn: Callable, tasks: Iterable, workers: int) -> list:
  """[fn(task) for task in tasks] on `workers` spawned processes (the
  synthetic data sets' video writers: PyAV encoding runs swscale too). A
  task that kills or stalls its process twice raises: there is no row to
  record it in."""
  def fail(task, outcome, description):
    raise RuntimeError(f'{fn.__name__}{task!r}: {description} ({outcome})')
  return list(ordered_results(fn, tasks, workers, on_failure=fail))
