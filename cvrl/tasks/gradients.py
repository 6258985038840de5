"""The per-replica loss and gradients every task's train step needs.

Model Garden's optimizers sum gradients over replicas, so each replica's loss
is divided by the number of replicas; under mixed precision the loss is
scaled before differentiation and the gradients unscaled after.
"""

from typing import Callable, Dict, Tuple

import tensorflow as tf
import tf_keras


def replica_loss_and_grads(
    compute_logs: Callable[[], Dict[str, tf.Tensor]], optimizer,
    variables_of: Callable[[], list]) -> Tuple[Dict[str, tf.Tensor], list]:
  """(logs, gradients of logs['total_loss'] / replicas w.r.t. variables).

  compute_logs: runs the forward pass and returns the losses (and whatever
  else the step logs); variables_of: the trainable variables, read after the
  forward pass so that a model built lazily has them.
  """
  num_replicas = tf.distribute.get_strategy().num_replicas_in_sync
  scaling = isinstance(optimizer, tf_keras.mixed_precision.LossScaleOptimizer)
  with tf.GradientTape() as tape:
    logs = compute_logs()
    scaled = logs['total_loss'] / num_replicas
    if scaling:
      scaled = optimizer.get_scaled_loss(scaled)
  grads = tape.gradient(scaled, variables_of())
  if scaling:
    grads = optimizer.get_unscaled_gradients(grads)
  return logs, grads
