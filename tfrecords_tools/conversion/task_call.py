"""The call that both runners make in a worker, and the row for a task whose
worker died or ran out of time there (`worker_pool`'s `on_failure`)."""

from typing import Callable, Optional

from tfrecords_tools.conversion import deadlines
from tfrecords_tools.conversion import decoder
from tfrecords_tools.conversion import worker_pool

_STATUS = {worker_pool.DIED: decoder.WORKER_DIED,
           worker_pool.TIMED_OUT: decoder.TIMEOUT}


class ConvertCall:
  """convert_fn(task, options) under a deadline: picklable, for the
  workers. `deadline` None converts without one (the job's own process,
  where the alarm would end the job)."""

  def __init__(self, convert_fn: Callable, options,
               deadline: Optional[deadlines.Deadline]):
    self._convert_fn = convert_fn
    self._options = options
    self._deadline = deadline

  def __call__(self, task):
    return deadlines.run(self._convert_fn, task, self._options,
                         self._deadline)


def failure_handler(failure_fn: Callable,
                    deadline: Optional[deadlines.Deadline]) -> Callable:
  """on_failure for `worker_pool`: failure_fn(task, status, error) with the
  manifest status of the outcome, a timeout's error naming the deadline."""
  def on_failure(task, outcome, description):
    if outcome == worker_pool.TIMED_OUT and deadline is not None:
      description += f' (the deadline: {deadline.describe()})'
    return failure_fn(task, _STATUS[outcome], description)
  return on_failure
