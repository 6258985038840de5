"""InfoNCE: equals Equation 1 in NumPy; multi-replica equals one device."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from cvrl import losses


def _numpy_infonce(z1, z2, tau):
  """Paper Equation 1, written out: 2N anchors, self excluded."""
  z = np.concatenate([z1, z2]).astype(np.float64)
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  n = len(z1)
  sim = z @ z.T / tau
  total, correct = 0.0, 0
  for i in range(2 * n):
    pos = (i + n) % (2 * n)
    others = [k for k in range(2 * n) if k != i]
    denom = np.sum(np.exp(sim[i, others]))
    total += -np.log(np.exp(sim[i, pos]) / denom)
    correct += others[int(np.argmax(sim[i, others]))] == pos
  return total / (2 * n), correct / (2 * n)


@pytest.mark.parametrize('n,tau', [(3, 0.1), (8, 0.5), (1, 0.1)])
def test_equals_numpy_equation_1(n, tau):
  rng = np.random.default_rng(n)
  z1, z2 = rng.normal(size=(n, 16)), rng.normal(size=(n, 16))
  out = losses.contrastive_loss(tf.constant(z1, tf.float32),
                                tf.constant(z2, tf.float32), tau)
  loss, acc = _numpy_infonce(z1, z2, tau)
  np.testing.assert_allclose(out['loss'].numpy(), loss, rtol=1e-5)
  np.testing.assert_allclose(out['accuracy'].numpy(), acc)
  assert out['logits'].shape == (2 * n, 2 * n)


def test_chance_value_when_nothing_is_learned():
  n = 8
  same = tf.ones([n, 4])
  out = losses.contrastive_loss(same, same, 0.1)
  np.testing.assert_allclose(out['loss'].numpy(), np.log(2 * n - 1),
                             rtol=1e-6)
  np.testing.assert_allclose(out['entropy'].numpy(), np.log(2 * n - 1),
                             rtol=1e-5)


def test_perfect_embeddings_score_full_accuracy():
  eye = tf.eye(6)
  out = losses.contrastive_loss(eye, eye * 3.0, 0.1)
  assert out['accuracy'].numpy() == 1.0 and out['loss'].numpy() < 1e-3


def test_weight_decay_counts_kernels_only():
  layer = tf_keras.layers.Dense(3)
  layer.build((None, 2))
  layer.kernel.assign(tf.ones([2, 3]))
  layer.bias.assign(tf.ones([3]) * 100)
  value = losses.weight_decay_loss(layer.trainable_variables, 1e-2)
  np.testing.assert_allclose(value.numpy(), 1e-2 * 6 / 2)


def test_mirrored_loss_and_gradients_equal_one_device(mirrored_strategy):
  rng = np.random.default_rng(0)
  n_global, dim = 8, 5
  x1 = rng.normal(size=(n_global, dim)).astype(np.float32)
  x2 = rng.normal(size=(n_global, dim)).astype(np.float32)
  w0 = rng.normal(size=(dim, 6)).astype(np.float32)

  # One device, the whole global batch.
  w = tf.Variable(w0)
  with tf.GradientTape() as tape:
    single = losses.contrastive_loss(x1 @ w, x2 @ w, 0.1)
  single_grad = tape.gradient(single['loss'], w).numpy()

  strategy = mirrored_strategy
  with strategy.scope():
    wm = tf.Variable(w0)

  def replica_fn(a, b):
    ctx = tf.distribute.get_replica_context()
    with tf.GradientTape() as tape:
      out = losses.contrastive_loss(a @ wm, b @ wm, 0.1, ctx)
      scaled = out['loss'] / ctx.num_replicas_in_sync
    return out['loss'], tape.gradient(scaled, wm)

  def split(x):
    return strategy.experimental_distribute_values_from_function(
        lambda ctx: x[ctx.replica_id_in_sync_group * 4:
                      (ctx.replica_id_in_sync_group + 1) * 4])

  loss, grad = strategy.run(tf.function(replica_fn), (split(x1), split(x2)))
  mean_loss = strategy.reduce(tf.distribute.ReduceOp.MEAN, loss, axis=None)
  total_grad = strategy.reduce(tf.distribute.ReduceOp.SUM, grad, axis=None)
  np.testing.assert_allclose(mean_loss.numpy(), single['loss'].numpy(),
                             atol=1e-5)
  np.testing.assert_allclose(total_grad.numpy(), single_grad, atol=1e-5)


def test_synchronised_batch_norm_equals_one_device(mirrored_strategy):
  rng = np.random.default_rng(1)
  x = rng.normal(size=(8, 3, 4)).astype(np.float32) * 3 + 1
  single = tf_keras.layers.BatchNormalization(synchronized=True)
  expected = single(x, training=True).numpy()
  strategy = mirrored_strategy
  with strategy.scope():
    synced = tf_keras.layers.BatchNormalization(synchronized=True)
    synced.build((None, 3, 4))
  values = strategy.experimental_distribute_values_from_function(
      lambda ctx: x[ctx.replica_id_in_sync_group * 4:
                    (ctx.replica_id_in_sync_group + 1) * 4])
  out = strategy.run(tf.function(lambda v: synced(v, training=True)),
                     (values,))
  got = np.concatenate([t.numpy() for t in
                        strategy.experimental_local_results(out)])
  np.testing.assert_allclose(got, expected, atol=1e-5)
  # Per-replica statistics would differ: the check has teeth.
  local = tf_keras.layers.BatchNormalization()(x[:4], training=True).numpy()
  assert np.abs(local - expected[:4]).max() > 1e-2


def test_release_scale_is_the_sum_of_the_two_directions():
  """'sum_of_directions' = mean over the N first-view anchors + mean over
  the N second-view anchors (the authors' loss_a + loss_b), written out."""
  rng = np.random.default_rng(3)
  n, tau = 5, 0.1
  z1, z2 = rng.normal(size=(n, 16)), rng.normal(size=(n, 16))
  z = np.concatenate([z1, z2])
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  sim = z @ z.T / tau
  directions = []
  for anchors in (range(n), range(n, 2 * n)):
    per_anchor = []
    for i in anchors:
      others = [k for k in range(2 * n) if k != i]
      positive = (i + n) % (2 * n)
      per_anchor.append(-sim[i, positive]
                        + np.log(np.sum(np.exp(sim[i, others]))))
    directions.append(np.mean(per_anchor))
  out = losses.contrastive_loss(tf.constant(z1, tf.float32),
                                tf.constant(z2, tf.float32), tau,
                                reduction='sum_of_directions')
  np.testing.assert_allclose(out['loss'].numpy(), sum(directions), rtol=1e-5)
  with pytest.raises(ValueError, match='reduction'):
    losses.contrastive_loss(tf.constant(z1, tf.float32),
                            tf.constant(z2, tf.float32), reduction='sum')
