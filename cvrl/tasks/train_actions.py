"""What the training driver adds to Orbit: a throughput summary after each
loop, and a controller that saves before it evaluates and on preemption."""

import time
from typing import Optional

import orbit
import tensorflow as tf

from cvrl.tasks import preemption


def format_duration(seconds: float) -> str:
  """'12m05s', or '1h02m05s' past an hour (also the converter's progress)."""
  seconds = int(max(0, seconds))
  hours, rest = divmod(seconds, 3600)
  minutes, secs = divmod(rest, 60)
  return f'{hours}h{minutes:02d}m{secs:02d}s' if hours else (
      f'{minutes}m{secs:02d}s')


class ExamplesPerSecond:
  """After every `steps_per_loop` steps: 'examples_per_second' and, when
  the run's length is known, 'progress_percent' and 'eta_seconds' in
  TensorBoard, and one line for the log:

    progress: step 450/900 (50.0%), 35.2 examples/s, ETA 3m12s

  An orbit train action: called with the loop's outputs, it reads the
  trainer's global step. The rate is that of the last loop; the ETA is the
  remaining steps at the mean rate since the job (re)started. It is made
  before Orbit's controller restores the checkpoint (the global step then
  still reads 0): `start_step` is the step the job resumes from.
  """

  def __init__(self, global_step: tf.Variable, global_batch_size: int,
               summary_dir: str, clock=time.perf_counter,
               total_steps: int = 0, printer=print,
               start_step: Optional[int] = None):
    self._step = global_step
    self._batch = global_batch_size
    self._writer = tf.summary.create_file_writer(summary_dir)
    self._clock = clock
    self._total = total_steps
    self._print = printer
    start = int(global_step.numpy()) if start_step is None else start_step
    self._last = (start, clock())
    self._first = self._last

  def __call__(self, unused_output=None) -> float:
    step, now = int(self._step.numpy()), self._clock()
    last_step, last_time = self._last
    self._last = (step, now)
    if step <= last_step or now <= last_time:
      return 0.0
    rate = (step - last_step) * self._batch / (now - last_time)
    with self._writer.as_default():
      tf.summary.scalar('examples_per_second', rate, step=step)
      if self._total:
        first_step, first_time = self._first
        per_step = (now - first_time) / max(step - first_step, 1)
        eta = per_step * max(self._total - step, 0)
        percent = 100.0 * step / self._total
        tf.summary.scalar('progress_percent', percent, step=step)
        tf.summary.scalar('eta_seconds', eta, step=step)
        self._print(f'progress: step {step}/{self._total} '
                    f'({percent:.1f}%), {rate:.1f} examples/s, '
                    f'ETA {format_duration(eta)}', flush=True)
    self._writer.flush()
    return rate


class EvaluationError(RuntimeError):
  """An evaluation failed; the training before it is saved."""


class CheckpointFirstController(orbit.Controller):
  """Orbit's controller, with the checkpoint written before each evaluation.

  Orbit's `train_and_evaluate` saves the final checkpoint only after the
  final evaluation, so an evaluation that fails (a label map that cannot be
  read, an evaluator bug) loses every step since the last interval
  checkpoint, and a rerun retrains them and fails again. Here each training
  segment ends with a checkpoint, and an evaluation that raises is re-raised
  as EvaluationError naming the step and the saved checkpoint.

  With a `preemption.Guard`, a signal stops training after the current step
  and saves a checkpoint there (`preemption.Preempted` says which); one
  during an evaluation stops it after its current batch.
  """

  def __init__(self, *args, guard: Optional[preemption.Guard] = None,
               restored_from: Optional[str] = None, **kwargs):
    self.guard = guard
    self.restored_from = restored_from
    super().__init__(*args, **kwargs)

  def restore_checkpoint(self, checkpoint_path: Optional[str] = None):
    """Orbit's initial restore, except when the job has already restored
    `restored_from` (the checkpoint `resume.select` chose) on every worker
    (`cvrl.tools.train`): then it is not read again. Orbit's own
    `restore_or_initialize` must not run there: Model Garden gives a
    non-chief worker of a multi-worker job a checkpoint manager in a new
    temporary folder, where it finds nothing, so on a restart that worker
    started from scratch (its init_fn) while the chief resumed, and their
    first collective failed."""
    if checkpoint_path is None and self.restored_from:
      return self.restored_from
    return super().restore_checkpoint(checkpoint_path)

  def train(self, steps: int, checkpoint_at_completion: bool = True):
    try:
      return super().train(steps, checkpoint_at_completion)
    except preemption.Preempted as e:
      self.save_checkpoint()
      self._sync_on_async_checkpointing()
      raise preemption.Preempted(
          e.signal_name, int(self.global_step.numpy()),
          self.checkpoint_manager.latest_checkpoint) from e

  def _evaluate_unless_stopped(self, steps: int):
    if self.guard is None:
      return self.evaluate(steps=steps)
    try:
      if self.guard.requested:  # came while the checkpoint was written
        raise preemption.Preempted(self.guard.signal_name)
      return self.evaluate(steps=steps)
    except preemption.Preempted as e:  # the step is saved (train above)
      raise preemption.Preempted(
          e.signal_name, int(self.global_step.numpy()),
          self.checkpoint_manager.latest_checkpoint) from e

  def train_and_evaluate(self, train_steps: int, eval_steps: int = -1,
                         eval_interval: Optional[int] = None):
    self._require('trainer', for_method='train_and_evaluate')
    self._require('evaluator', for_method='train_and_evaluate')
    output = None
    current = int(self.global_step.numpy())
    eval_interval = eval_interval or (train_steps - current)
    while current < train_steps:
      self.train(steps=min(train_steps, current + eval_interval),
                 checkpoint_at_completion=True)
      current = int(self.global_step.numpy())
      try:
        output = self._evaluate_unless_stopped(eval_steps)
      except preemption.Preempted:
        raise
      except Exception as e:  # pylint: disable=broad-except
        saved = (self.checkpoint_manager.latest_checkpoint
                 if self.checkpoint_manager else None)
        raise EvaluationError(
            f'evaluation at step {current} failed: {type(e).__name__}: {e}. '
            f'The training is saved ({saved or "no checkpoint manager"}); '
            'fix the cause, then evaluate it with --mode=eval (same flags), '
            'or rerun to continue training') from e
    self._sync_on_async_checkpointing()
    return output
