"""Preemption: SIGTERM (or Ctrl-C) ends a training job after the current
step, with a checkpoint, instead of losing everything since the last one.

Cloud TPU maintenance, spot and preemptible GPU VMs send SIGTERM and give
about 30 seconds. Model Garden saves on preemption only through a cluster
resolver (`orbit.actions.SaveCheckpointIfPreempted`: TPU and multi-worker
jobs); on those this module stays out of the way, so that no signal is
handled twice. Everywhere else (one GPU host, a CPU) `Guard`:

  1. on the first SIGTERM or SIGINT writes one line and asks the training
     loop to stop: `StoppableTrainer` runs its steps one tf.function call
     at a time (not Orbit's in-graph while loop) and stops after the step
     in flight;
  2. the controller (`train_actions.CheckpointFirstController`) then saves
     a checkpoint at that step, and the command exits with a line naming it
     and the status 128 + the signal's number (143 for SIGTERM, 130 for
     SIGINT; `exit_status`): not 0, which a Kubernetes Job, Vertex AI,
     systemd's Restart=on-failure, a Slurm requeue or a shell `until` loop
     read as "finished". The same command run again resumes from the
     checkpoint with exactly the batches an uninterrupted run would have
     seen;
  3. a signal during an evaluation (whose step is already saved) stops the
     evaluation before its next batch: the handler only records the signal,
     and the evaluation loop (`stoppable_eval_loop_fn`) checks it between
     batches, so nothing is interrupted inside a write;
  4. further signals while stopping are ignored with a line (launchers
     that signal a process group deliver two at once); SIGKILL still ends
     the job at once.
"""

import signal
import threading
from typing import Optional

from absl import logging

from official.core import base_trainer
from orbit.utils import loop_fns

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def exit_status(signal_name: str) -> int:
  """The command's exit status after a save on `signal_name`: 128 + its
  number, as a shell reports a process ended by it (restartable, not 0)."""
  return 128 + int(signal.Signals[signal_name])


class Preempted(Exception):
  """Training stopped on a signal; the step reached is saved."""

  def __init__(self, signal_name: str, step: int = -1,
               checkpoint: Optional[str] = None):
    self.signal_name, self.step, self.checkpoint = signal_name, step, checkpoint
    super().__init__(
        f'{signal_name}: stopped at step {step}' +
        (f', saved {checkpoint}' if checkpoint else ''))


class Guard:
  """Installs the handlers (main thread only); `requested` says whether a
  signal came. Use as a context manager: the previous handlers are put
  back on exit."""

  def __init__(self, printer=print):
    self._print = printer
    self.signal_name = ''
    self._previous = {}

  @property
  def requested(self) -> bool:
    return bool(self.signal_name)

  def _handle(self, signum, unused_frame):
    # Only records the signal: raising here would interrupt whatever Python
    # is running (a checkpoint or summary write); the loops check
    # `requested` between steps and batches.
    name = signal.Signals(signum).name
    if self.requested:
      self._print(f'train: {name} ignored: already stopping after '
                  f'{self.signal_name} (saving a checkpoint; SIGKILL ends '
                  'the job at once)', flush=True)
      return
    self.signal_name = name
    self._print(f'train: {name} received: finishing the current step, then '
                'saving a checkpoint and exiting', flush=True)
    logging.warning('%s received: stopping after the current step', name)

  def install(self) -> 'Guard':
    if threading.current_thread() is not threading.main_thread():
      raise RuntimeError('signal handlers need the main thread')
    for signum in SIGNALS:
      self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def restore(self) -> None:
    """Puts the previous handlers back; once a signal came, ignores the
    signals instead (the job is stopping: a repeat must not end it before
    it exits with its status)."""
    for signum, handler in self._previous.items():
      signal.signal(signum, signal.SIG_IGN if self.requested else handler)
    self._previous = {}

  def __enter__(self):
    return self.install()

  def __exit__(self, *exc):
    self.restore()


def model_garden_handles_it(params, distribution) -> bool:
  """Whether Model Garden's own preemption action runs in this job
  (official.core.actions: a cluster resolver and the trainer's flag)."""
  return bool(params.trainer.preemption_on_demand_checkpoint and
              getattr(distribution, 'cluster_resolver', None))


def stoppable_eval_loop_fn(step_fn, guard: Guard):
  """An evaluation loop like Orbit's Python one (`num_steps` -1: until the
  data ends), raising Preempted before a batch once `guard` has a signal."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  def loop_fn(iterator, num_steps, state=None, reduce_fn=None):
    num_steps = int(num_steps)
    done = 0
    try:
      while num_steps == -1 or done < num_steps:
        if guard.requested:
          raise Preempted(guard.signal_name)
        outputs = step_fn(iterator)
        if reduce_fn is not None:
          state = reduce_fn(state, outputs)
        done += 1
    except (StopIteration, tf.errors.OutOfRangeError):
      pass
    return state
  return loop_fn


def stoppable_loop_fn(step_fn, guard: Guard):
  """Orbit's Python-driven loop of `step_fn`, stopping before a step once
  `guard` has a signal (the steps done count; Preempted is raised)."""
  plain = loop_fns.create_loop_fn(step_fn)

  def loop_fn(iterator, num_steps, state=None, reduce_fn=None):
    num_steps = int(num_steps)
    for _ in range(num_steps):
      if guard.requested:
        raise Preempted(guard.signal_name)
      state = plain(iterator, 1, state, reduce_fn)
    return state
  return loop_fn


class StoppableTrainer(base_trainer.Trainer):
  """Model Garden's trainer whose train loop can stop between steps (see
  the module doc). Without a guard it is Model Garden's trainer."""

  guard: Optional[Guard] = None

  def create_train_loop_fn(self):
    if self.guard is None:
      return super().create_train_loop_fn()
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    step_fn = self.train_step
    if self._train_options.use_tf_function:
      step_fn = tf.function(step_fn)
    return stoppable_loop_fn(step_fn, self.guard)

  def create_eval_loop_fn(self, has_state: bool):
    if self.guard is None or self._eval_options.use_tf_while_loop:
      return super().create_eval_loop_fn(has_state)
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    step_fn = self.eval_step
    if self._eval_options.use_tf_function:
      step_fn = tf.function(step_fn)
    return stoppable_eval_loop_fn(step_fn, self.guard)
