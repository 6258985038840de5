"""CVRL's InfoNCE loss (paper Equation 1) with negatives from every replica.

A pure function of the two views' embeddings. Each of the 2N views of the
global batch is an anchor with one positive (the other clip of its video)
and 2N - 2 negatives (both clips of every other video); its own similarity
is excluded. The loss is the mean over anchors, so an encoder that has
learned nothing scores ln(2N - 1) and contrastive accuracy ~1 / (2N - 1).

Scale (`reduction`): Equation 1 averages over anchors ('mean', the value
above). The authors' release (SimCLR's objective, and Model Garden's
official/projects/video_ssl/losses/losses.py) adds the mean over the N
first-view anchors to the mean over the N second-view anchors
('sum_of_directions'): the same minimiser at twice the value and twice the
gradient, relative to weight decay too. The paper's lr 0.32 and weight decay
1e-6 were tuned with that code, so it is the paper recipes' default.

Cross-replica negatives use `ReplicaContext.all_gather`, which works under
TPUStrategy, MirroredStrategy, MultiWorkerMirroredStrategy and the default
strategy, and passes gradients back to the replica that owns each row. The
replica's position comes from `replica_id_in_sync_group` (not
`xla.replica_id()`, which only exists on TPU).
"""

from typing import Dict, Optional

import tensorflow as tf

_MASK = 1e9
REDUCTIONS = ('sum_of_directions', 'mean')


def _gather(x: tf.Tensor, context) -> tf.Tensor:
  if context is None or context.num_replicas_in_sync == 1:
    return x
  return context.all_gather(x, axis=0)


def _replica_id(context) -> tf.Tensor:
  if context is None or context.num_replicas_in_sync == 1:
    return tf.constant(0, tf.int32)
  return tf.cast(context.replica_id_in_sync_group, tf.int32)


def contrastive_loss(embeddings_1: tf.Tensor, embeddings_2: tf.Tensor,
                     temperature: float = 0.1,
                     replica_context: Optional[tf.distribute.ReplicaContext]
                     = None, reduction: str = 'mean'
                     ) -> Dict[str, tf.Tensor]:
  """InfoNCE over the global batch.

  Args:
    embeddings_1: [n, d] projections of the first clips of this replica's n
      videos (any scale: they are l2-normalised here).
    embeddings_2: [n, d] projections of the second clips, same video order.
    temperature: tau of Equation 1.
    replica_context: the current replica context inside `strategy.run`, or
      None for one device. With R replicas the global batch is N = R * n.
    reduction: 'mean' or 'sum_of_directions' (2 x 'mean'), see above.

  Returns:
    'loss': scalar, mean over this replica's 2n anchors of
      -log(exp(s_pos / tau) / sum_{k != anchor} exp(s_k / tau)) over all 2N
      views, times 2 for 'sum_of_directions' (average the replicas' values
      for the global loss);
    'accuracy': scalar, share of anchors whose most similar view is the
      positive;
    'entropy': scalar, mean entropy of the anchors' softmax over candidates;
    'logits': [2n, 2N] (positive candidates first, then same-view ones).
  """
  z_1 = tf.math.l2_normalize(tf.cast(embeddings_1, tf.float32), axis=-1)
  z_2 = tf.math.l2_normalize(tf.cast(embeddings_2, tf.float32), axis=-1)
  all_1, all_2 = _gather(z_1, replica_context), _gather(z_2, replica_context)
  local = tf.shape(z_1)[0]
  total = tf.shape(all_1)[0]
  # Global index of each local video: the positive's column, and the self
  # column to mask among same-view candidates.
  index = _replica_id(replica_context) * local + tf.range(local)
  self_mask = tf.one_hot(index, total) * _MASK

  def anchor_logits(z, same_view, other_view):
    positives_block = tf.matmul(z, other_view, transpose_b=True) / temperature
    same_block = tf.matmul(z, same_view, transpose_b=True) / temperature
    return tf.concat([positives_block, same_block - self_mask], axis=1)

  logits = tf.concat([anchor_logits(z_1, all_1, all_2),
                      anchor_logits(z_2, all_2, all_1)], axis=0)
  labels = tf.concat([index, index], axis=0)
  if reduction not in REDUCTIONS:
    raise ValueError(f'reduction={reduction!r}: expected one of {REDUCTIONS}')
  per_anchor = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
  # Both directions have n anchors, so the sum of their means is 2 x the
  # mean over all 2n.
  directions = 2.0 if reduction == 'sum_of_directions' else 1.0
  predicted = tf.argmax(logits, axis=1, output_type=tf.int32)
  probs = tf.nn.softmax(logits)
  entropy = -tf.reduce_sum(probs * tf.math.log(probs + 1e-12), axis=1)
  return {
      'loss': directions * tf.reduce_mean(per_anchor),
      'accuracy': tf.reduce_mean(tf.cast(predicted == labels, tf.float32)),
      'entropy': tf.reduce_mean(entropy),
      'logits': logits,
  }


def weight_decay_loss(variables, weight_decay: float) -> tf.Tensor:
  """weight_decay * sum(||w||^2 / 2) over convolution and dense kernels.

  Biases and batch-norm parameters are not decayed (the authors' recipe,
  as in SimCLR and Model Garden's video_ssl).
  """
  kernels = [v for v in variables if 'kernel' in v.name]
  if not kernels or not weight_decay:
    return tf.constant(0.0, tf.float32)
  return weight_decay * tf.add_n(
      [tf.nn.l2_loss(tf.cast(v, tf.float32)) for v in kernels])
