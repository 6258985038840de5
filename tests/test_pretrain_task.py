"""The pretraining task and its registered experiments."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from official.core import exp_factory
from official.core import task_factory
from official.modeling import optimization

from cvrl.eval import knn
from cvrl import registry_imports  # pylint: disable=unused-import  # noqa: F401
from cvrl.configs import base
from cvrl.configs import pretrain as pretrain_cfg
from cvrl.configs import launch
from cvrl.configs import precision
from cvrl.configs import video_data
from cvrl.tasks import pretrain
from tests.conftest import small_pretrain_config

EXPERIMENTS = ('cvrl_pretrain_k400', 'cvrl_pretrain_k600',
               'cvrl_pretrain_k400_200ep', 'cvrl_pretrain_k600_200ep',
               'cvrl_pretrain_demo')


def _batch(n=4, t=4, s=32, seed=0):
  rng = np.random.default_rng(seed)
  return {'image': tf.constant(rng.uniform(size=(2 * n, t, s, s, 3)),
                               tf.float32),
          'label': tf.zeros([n], tf.int32)}


@pytest.mark.parametrize('name', EXPERIMENTS)
def test_experiments_are_registered_and_valid(name):
  config = exp_factory.get_exp_config(name)
  config.validate()
  assert isinstance(config.task, pretrain_cfg.PretrainTaskConfig)
  assert config.task.train_data.mode == 'pretrain'


@pytest.mark.parametrize('name,steps', [('cvrl_pretrain_k400', 184_000),
                                        ('cvrl_pretrain_k600', 284_000),
                                        ('cvrl_pretrain_k400_200ep', 46_000)])
def test_paper_recipe(name, steps):
  config = exp_factory.get_exp_config(name)
  assert config.runtime.mixed_precision_dtype == 'auto'
  launch.prepare(config, precision.Devices(tpu=True))
  data = config.task.train_data
  # The paper's step counts (Figure 4) at batch 1024.
  assert abs(config.trainer.train_steps - steps) <= 0.005 * steps
  assert data.global_batch_size == 1024 and data.num_frames == 16
  assert data.frame_stride == 2 and data.crop_size == 224
  assert config.task.model.backbone.cvrl_r3d.depth == 50
  assert config.task.model.norm_activation.use_sync_bn
  assert config.task.losses.temperature == 0.1
  assert config.task.losses.reduction == 'sum_of_directions'  # the release
  assert config.runtime.mixed_precision_dtype == 'bfloat16'  # on TPU
  assert data.dtype == 'bfloat16'
  opt = config.trainer.optimizer_config
  assert opt.optimizer.type == 'sgd' and opt.optimizer.sgd.momentum == 0.9
  schedule = optimization.OptimizerFactory(opt).build_learning_rate()
  total = config.trainer.train_steps
  warmup = round(5 * data.num_examples / 1024)
  lr = lambda s: float(schedule(s))  # pylint: disable=unnecessary-lambda-assignment
  assert lr(0) == 0.0
  np.testing.assert_allclose(lr(warmup // 2), 0.16, rtol=1e-2)
  np.testing.assert_allclose(lr(warmup), 0.32, rtol=1e-6)
  np.testing.assert_allclose(lr((warmup + total) // 2), 0.16, rtol=1e-2)
  assert lr(total) < 1e-6


def test_strict_overrides_and_ranges_name_the_field():
  config = exp_factory.get_exp_config('cvrl_pretrain_demo')
  with pytest.raises(KeyError, match='temprature'):
    config.override({'task': {'losses': {'temprature': 0.2}}})
  bad = small_pretrain_config()
  bad.losses.temperature = 0.0
  with pytest.raises(base.ConfigError, match='losses.temperature'):
    task_factory.get_task(bad)
  bad = small_pretrain_config()
  bad.model.projection_head.num_hidden_layers = 4
  with pytest.raises(base.ConfigError, match='num_hidden_layers'):
    task_factory.get_task(bad)


def test_train_steps_learn_on_a_fixed_batch():
  task = task_factory.get_task(small_pretrain_config())
  assert isinstance(task, pretrain.PretrainTask)
  model = task.build_model()
  optimizer = tf_keras.optimizers.SGD(0.1, momentum=0.9)
  metrics = task.build_metrics()
  step = tf.function(lambda b: task.train_step(b, model, optimizer, metrics))
  batch = _batch()
  loss_of = lambda: float(task.step_losses(  # pylint: disable=g-long-lambda
      model, batch, training=True)[0]['contrastive_loss'])
  before = loss_of()
  assert before > np.log(7) - 0.3  # untrained: not better than chance
  for _ in range(10):
    logs = step(batch)
  assert set(pretrain.METRIC_NAMES) <= set(logs)
  assert loss_of() < before - 0.3
  for metric in metrics:
    metric.reset_state()
  val = task.validation_step(batch, model, metrics)
  assert np.isfinite(val['contrastive_loss']) and val['regularization_loss'] > 0


def test_jit_compiled_step_matches_the_plain_one():
  config = small_pretrain_config(jit_compile=True)
  plain_task = task_factory.get_task(small_pretrain_config())
  jit_task = task_factory.get_task(config)
  model = plain_task.build_model()
  batch = _batch(seed=3)
  opt = tf_keras.optimizers.SGD(0.0)
  plain = tf.function(lambda b: plain_task.train_step(b, model, opt, None))(
      batch)
  compiled = tf.function(lambda b: jit_task.train_step(b, model, opt, None))(
      batch)
  np.testing.assert_allclose(compiled['loss'], plain['loss'], rtol=1e-4)


def test_train_step_under_mirrored_strategy_equals_one_device(
    mirrored_strategy):
  config = small_pretrain_config()
  config.model.norm_activation.use_sync_bn = True
  task = task_factory.get_task(config)
  batch = _batch(n=4, seed=5)
  single_model = task.build_model()
  weights = single_model.get_weights()
  single, _ = task.step_losses(single_model, batch, training=True)
  with mirrored_strategy.scope():
    model = task.build_model()
  model.set_weights(weights)
  images = batch['image'].numpy()

  def shard(ctx):
    i = ctx.replica_id_in_sync_group
    # Replica i holds videos 2i, 2i+1: both of their views.
    return np.concatenate([images[2 * i:2 * i + 2],
                           images[4 + 2 * i:4 + 2 * i + 2]])
  values = mirrored_strategy.experimental_distribute_values_from_function(
      shard)
  out = mirrored_strategy.run(
      tf.function(lambda v: task.step_losses(model, {'image': v},
                                             training=True)[0]),
      (values,))
  loss = mirrored_strategy.reduce('MEAN', out['contrastive_loss'], axis=None)
  np.testing.assert_allclose(loss.numpy(), single['contrastive_loss'].numpy(),
                             rtol=1e-5)


def test_knn_monitor_collects_validation_features_and_reduces_to_knn():
  task = task_factory.get_task(small_pretrain_config())
  model = task.build_model()
  batches = []
  for seed in range(3):
    batch = _batch(seed=seed)
    batch['label'] = tf.constant([0, 1, 2, seed % 3], tf.int32)
    batches.append(batch)
  state = None
  for i, batch in enumerate(batches):
    logs = task.validation_step(batch, model, task.build_metrics(False))
    outputs = {k: v for k, v in logs.items()
               if k.startswith('knn_')}
    if i == 1:  # as a distribution strategy hands them: one per replica
      outputs = {k: (v[:2], v[2:]) for k, v in outputs.items()}
    state = task.aggregate_logs(state, outputs)
  result = task.reduce_aggregated_logs(state)
  # Hand computation: mean backbone feature of the two views of each video.
  features = []
  for batch in batches:
    f = model(batch['image'], training=False)['features'].numpy()
    features.append((f[:4] + f[4:]) / 2)
  labels = np.concatenate([b['label'].numpy() for b in batches])
  want = knn.knn_top1(np.concatenate(features), labels, 20, 0.07)
  assert result['knn_top1_accuracy'] == pytest.approx(want)
  np.testing.assert_allclose(np.concatenate(state['knn_features']),
                             np.concatenate(features), rtol=1e-5, atol=1e-6)
  # Unlabelled validation videos: no kNN value rather than a wrong one.
  unlabelled = {'knn_features': np.zeros((4, 8), np.float32),
                'knn_labels': np.full([4], -1, np.int32)}
  assert task.reduce_aggregated_logs(task.aggregate_logs(None, unlabelled)) == {}
  off = task_factory.get_task(small_pretrain_config(knn_monitor={'k': 0}))
  logs = off.validation_step(batches[0], model, off.build_metrics(False))
  assert 'knn_features' not in logs


def test_release_loss_scale_doubles_the_contrastive_gradient_only():
  """With the release's scale the contrastive term pulls twice as hard
  against the same weight decay: d(total)/dw = 2 g_contrastive + g_decay."""
  grads = {}
  for reduction in ('mean', 'sum_of_directions'):
    config = small_pretrain_config()
    config.losses.reduction = reduction
    config.losses.l2_weight_decay = 1e-2
    task = task_factory.get_task(config)
    model = task.build_model()  # same init_seed: same weights
    views = _batch()['image']
    with tf.GradientTape(persistent=True) as tape:
      # Model Garden's public contract: outputs -> build_losses.
      logs = task.build_losses(None, task.forward(model, {'image': views},
                                                  training=False),
                               aux_losses=task.regularization(model))
    variables = model.trainable_variables
    grads[reduction] = {
        key: tape.gradient(logs[key], variables)
        for key in ('contrastive_loss', 'regularization_loss', 'total_loss')}
    grads[reduction]['values'] = {k: float(v) for k, v in logs.items()}
  mean, release = grads['mean'], grads['sum_of_directions']
  np.testing.assert_allclose(release['values']['contrastive_loss'],
                             2 * mean['values']['contrastive_loss'], rtol=1e-5)
  checked = 0
  for g_mean, g_rel, d_mean, d_rel, t_rel in zip(
      mean['contrastive_loss'], release['contrastive_loss'],
      mean['regularization_loss'], release['regularization_loss'],
      release['total_loss']):
    if g_mean is None:
      continue
    np.testing.assert_allclose(g_rel.numpy(), 2 * g_mean.numpy(),
                               rtol=1e-4, atol=1e-7)
    if d_mean is not None:
      np.testing.assert_allclose(d_rel.numpy(), d_mean.numpy(), rtol=1e-6)
      np.testing.assert_allclose(t_rel.numpy(),
                                 2 * g_mean.numpy() + d_mean.numpy(),
                                 rtol=1e-4, atol=1e-7)
      checked += 1
  assert checked > 10
