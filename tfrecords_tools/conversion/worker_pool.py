"""Conversion workers that may die: results in input order, whatever happens.

A conversion runs for hours on a pool of processes, and a process can die
under it: the kernel's OOM killer, a codec's segfault, a stray SIGKILL.
`multiprocessing.Pool.imap` then waits forever for the task its dead worker
held. Here (`ordered_results`):

  - tasks run on `workers` forked processes (`concurrent.futures`), at most
    a small window ahead of the task the caller consumes, so results of a
    slow video do not pile up behind it;
  - when a worker dies, the pool is replaced, and every task that had not
    come back (the victim among them, which one is not known) is run again,
    each alone in a fresh process, `workers` at a time;
  - a task whose own process dies again is the culprit: `on_death(task,
    description)` makes its result (a manifest row `worker_died`, with the
    signal), and the job goes on.

So a death costs the window's tasks twice, never the job; a task that kills
its process every time is reported, not retried forever (a rerun keeps it
unless asked: `--retry_failed`).
"""

import collections
import concurrent.futures
import gc
import multiprocessing
import signal
from typing import Callable, Iterable, Iterator, List, Sequence, Tuple

from absl import logging

_CONTEXT = multiprocessing.get_context('fork')


def _forked(start: Callable):
  """start() with the parent's objects frozen for the fork: a child that
  garbage-collects objects inherited from a process that has run TensorFlow
  (their finalizers call into a runtime that did not survive the fork)
  dies with a segfault."""
  gc.freeze()
  try:
    return start()
  finally:
    gc.unfreeze()


def describe_exit(exitcode) -> str:
  """'killed by SIGKILL' / 'exited with status 3' for a Process.exitcode."""
  if exitcode is None:
    return 'did not exit'
  if exitcode < 0:
    try:
      return f'killed by {signal.Signals(-exitcode).name}'
    except ValueError:
      return f'killed by signal {-exitcode}'
  return f'exited with status {exitcode}'


def _child(fn, task, connection):
  connection.send(fn(task))
  connection.close()


def run_isolated(fn: Callable, tasks: Sequence, workers: int
                 ) -> List[Tuple[bool, object]]:
  """fn(task) for each task, each in a process of its own, `workers` at a
  time; per task (True, result) or (False, how its process ended)."""
  results: List[Tuple[bool, object]] = [None] * len(tasks)  # type: ignore
  pending = list(enumerate(tasks))
  running = []
  while pending or running:
    while pending and len(running) < max(1, workers):
      index, task = pending.pop(0)
      receive, send = _CONTEXT.Pipe(duplex=False)
      process = _CONTEXT.Process(target=_child, args=(fn, task, send),
                                 daemon=True)
      _forked(process.start)
      send.close()
      running.append((index, process, receive))
    index, process, receive = running.pop(0)
    try:
      results[index] = (True, receive.recv())
    except EOFError:  # the process ended without sending
      process.join()
      results[index] = (False, describe_exit(process.exitcode))
    else:
      process.join()
    receive.close()
  return results


class _Done:
  """A finished result in the window (what an isolated rerun returned)."""

  def __init__(self, value):
    self._value = value

  def result(self):
    return self._value


def ordered_results(fn: Callable, tasks: Iterable, workers: int,
                    on_death: Callable[[object, str], object],
                    window: int = 0) -> Iterator:
  """fn(task) for every task, in order (see the module doc); fn must be
  picklable and is expected not to raise (an exception it raises is
  re-raised here)."""
  window = window or 2 * workers + 2
  queue = collections.deque()
  tasks = iter(tasks)
  executor = None

  def new_executor():
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=_CONTEXT)

  def fill():
    nonlocal executor
    while len(queue) < window:
      try:
        task = next(tasks)
      except StopIteration:
        return
      if executor is None:
        executor = new_executor()
      queue.append((task, _forked(lambda t=task: executor.submit(fn, t))))

  try:
    fill()
    while queue:
      task, future = queue[0]
      try:
        value = future.result()
      except concurrent.futures.process.BrokenProcessPool:
        executor.shutdown(wait=False, cancel_futures=True)
        executor = None
        _rerun_window(fn, queue, workers, on_death)
        continue
      queue.popleft()
      yield value
      fill()
  finally:
    if executor is not None:
      executor.shutdown(wait=False, cancel_futures=True)


def _rerun_window(fn, queue, workers, on_death) -> None:
  """After a worker died: the tasks of the window that did not come back,
  each alone; their results (or `on_death`'s) replace them in place."""
  lost = []
  for position, (task, future) in enumerate(queue):
    if isinstance(future, _Done):
      continue
    if future.done() and not future.cancelled() and (
        future.exception() is None):
      continue  # came back before the pool broke
    lost.append(position)
  logging.warning('a conversion worker died: the pool is restarted and %d '
                  'unfinished tasks are run again, each in its own process',
                  len(lost))
  outcomes = run_isolated(fn, [queue[p][0] for p in lost], workers)
  for position, (ok, value) in zip(lost, outcomes):
    task = queue[position][0]
    if not ok:
      description = (f'the conversion process {value} on this input, '
                     'twice (once in the pool, once alone)')
      logging.warning('%s', description)
      value = on_death(task, description)
    queue[position] = (task, _Done(value))
