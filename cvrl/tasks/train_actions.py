"""Orbit actions run after each training loop: throughput summaries."""

import time

import tensorflow as tf


class ExamplesPerSecond:
  """Writes 'examples_per_second' (global batch x steps / wall time).

  An orbit train action: called with the loop's outputs after every
  `steps_per_loop` steps, it reads the trainer's global step.
  """

  def __init__(self, global_step: tf.Variable, global_batch_size: int,
               summary_dir: str, clock=time.perf_counter):
    self._step = global_step
    self._batch = global_batch_size
    self._writer = tf.summary.create_file_writer(summary_dir)
    self._clock = clock
    self._last = (int(global_step.numpy()), clock())

  def __call__(self, unused_output=None) -> float:
    step, now = int(self._step.numpy()), self._clock()
    last_step, last_time = self._last
    self._last = (step, now)
    if step <= last_step or now <= last_time:
      return 0.0
    rate = (step - last_step) * self._batch / (now - last_time)
    with self._writer.as_default():
      tf.summary.scalar('examples_per_second', rate, step=step)
    self._writer.flush()
    return rate
