"""The classification task: freezing, normalisation, multi-view testing,
checked restoring, and every registered evaluation experiment."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from official.core import exp_factory
from official.core import task_factory
from official.core import train_utils

from cvrl import registry_imports  # noqa: F401  pylint: disable=unused-import
from cvrl.configs import base
from cvrl.configs import classification as classification_cfg
from cvrl.configs import launch
from cvrl.configs import precision
from cvrl.configs import video_data
from cvrl.modeling import checkpoint_restore
from cvrl.modeling import cvrl_model
from tests.conftest import pretrained_checkpoint

FRAMES, SIZE, CLASSES = 4, 32, 8


def small(params, **task_fields):
  """An experiment shrunk to the small R3D and tiny clips."""
  params.task.model.backbone.cvrl_r3d.depth = 14
  params.task.model.backbone.cvrl_r3d.width_multiplier = 0.125
  params.task.model.norm_activation.use_sync_bn = False
  params.task.model.head.num_classes = CLASSES
  for data in (params.task.train_data, params.task.validation_data):
    data.num_frames, data.crop_size, data.test_short_side = FRAMES, SIZE, SIZE
  params.task.override(task_fields, is_strict=True)
  return params


def linear_task(**fields):
  fields = {'init_checkpoint': '', 'random_backbone': True, **fields}
  params = small(exp_factory.get_exp_config('cvrl_linear_eval_demo'),
                 **fields)
  return task_factory.get_task(params.task)


def batch(seed=0, size=4, views=None):
  rng = np.random.default_rng(seed)
  shape = [size] + ([views] if views else []) + [FRAMES, SIZE, SIZE, 3]
  return {'image': tf.constant(rng.uniform(size=shape), tf.float32),
          'label': tf.constant(rng.integers(0, CLASSES, size), tf.int32)}


def _train(task, model, steps, lr=5.0):
  optimizer = tf_keras.optimizers.SGD(lr)
  metrics = task.build_metrics()
  for step in range(steps):
    task.train_step(batch(step), model, optimizer, metrics)


@pytest.mark.parametrize('freeze', [True, False])
def test_linear_eval_freezes_the_backbone_and_bn(freeze):
  task = linear_task(freeze_backbone=freeze)
  model = task.build_model()
  before = [w.numpy() for w in model.backbone.weights]
  head_before = model.classifier.kernel.numpy()
  _train(task, model, 3)
  changed = [not np.array_equal(b, w.numpy())
             for b, w in zip(before, model.backbone.weights)]
  moving = [not np.array_equal(b, w.numpy())
            for b, w in zip(before, model.backbone.weights)
            if 'moving_' in w.name]
  assert not np.array_equal(head_before, model.classifier.kernel.numpy())
  if freeze:
    assert not any(changed), 'a frozen backbone weight moved'
    assert len(model.trainable_variables) == 2  # the linear layer only
  else:  # the same steps do move weights and BN statistics when fine-tuning
    assert all(moving) and sum(changed) > len(changed) // 2


@pytest.mark.parametrize('normalize', [True, False])
def test_the_linear_layer_sees_the_l2_normalised_feature(normalize):
  task = linear_task(model={'head': {'normalize_features': normalize}})
  model = task.build_model()
  images = batch()['image']
  features = model.backbone(images, training=False).numpy()
  kernel, bias = model.classifier.get_weights()
  if normalize:
    features = features / np.linalg.norm(features, axis=1, keepdims=True)
  np.testing.assert_allclose(model(images, training=False).numpy(),
                             features @ kernel + bias, rtol=1e-4, atol=1e-6)


def test_validation_averages_softmax_over_all_views():
  task = linear_task()
  model = task.build_model()
  _train(task, model, 2)  # a non-trivial head
  data = batch(seed=7, size=3, views=6)
  metrics = task.build_metrics(training=False)
  logs = task.validation_step(data, model, metrics)
  per_view = np.stack([tf.nn.softmax(model(data['image'][:, v],
                                           training=False)).numpy()
                       for v in range(6)], axis=1)
  probs = per_view.mean(axis=1)
  labels = data['label'].numpy()
  top1 = np.mean(probs.argmax(axis=1) == labels)
  top5 = np.mean([labels[i] in np.argsort(-probs[i])[:5] for i in range(3)])
  loss = -np.mean(np.log(probs[np.arange(3), labels]))
  assert float(logs['top_1_accuracy']) == pytest.approx(top1)
  assert float(logs['top_5_accuracy']) == pytest.approx(top5)
  assert float(logs['classification_loss']) == pytest.approx(loss, rel=1e-4)


def test_missing_checkpoint_never_means_from_scratch():
  params = small(exp_factory.get_exp_config('cvrl_linear_eval_demo'))
  params.task.init_checkpoint = ''
  with pytest.raises(base.ConfigError, match='task.init_checkpoint'):
    params.task.validate()
  params.task.init_checkpoint, params.task.random_backbone = 'x', True
  with pytest.raises(base.ConfigError, match='not both'):
    params.task.validate()


def _pretrained_checkpoint(tmp_path, width):
  return pretrained_checkpoint(str(tmp_path / 'pretrain'), width,
                               (FRAMES, SIZE, SIZE, 3))


def test_restores_exactly_the_pretrained_backbone(tmp_path):
  pretrained, folder = _pretrained_checkpoint(tmp_path, 0.125)
  params = small(exp_factory.get_exp_config('cvrl_linear_eval_demo'),
                 init_checkpoint=folder)
  task = task_factory.get_task(params.task)
  model = task.build_model()
  task.initialize(model)
  for want, got in zip(pretrained.backbone.weights, model.backbone.weights):
    np.testing.assert_array_equal(want.numpy(), got.numpy())


def test_a_checkpoint_of_another_backbone_fails_naming_the_variable(tmp_path):
  _, folder = _pretrained_checkpoint(tmp_path, 0.25)  # wider than configured
  params = small(exp_factory.get_exp_config('cvrl_linear_eval_demo'),
                 init_checkpoint=folder)
  task = task_factory.get_task(params.task)
  model = task.build_model()
  before = [w.numpy() for w in model.backbone.weights]
  with pytest.raises(checkpoint_restore.RestoreError,
                     match=r'stem_conv/kernel:0 has shape \[5, 7, 7, 3, 8\] '
                     r'but the checkpoint holds .*\[5, 7, 7, 3, 16\]'):
    task.initialize(model)
  for b, w in zip(before, model.backbone.weights):  # nothing half-restored
    np.testing.assert_array_equal(b, w.numpy())
  # Deeper checkpoint: the configured backbone lacks some of its variables.
  params.task.model.backbone.cvrl_r3d.width_multiplier = 0.25
  deeper = exp_factory.get_exp_config('cvrl_pretrain_demo').task.model
  deeper.backbone.cvrl_r3d.depth = 50
  deeper.backbone.cvrl_r3d.width_multiplier = 0.25
  big = cvrl_model.build_backbone(deeper, (FRAMES, SIZE, SIZE, 3))
  path = checkpoint_restore.save_backbone(big, str(tmp_path / 'deep' / 'ck'))
  model = task_factory.get_task(params.task).build_model()
  # Layers line up by position: res2 matches, R3D-50's 2nd res2 block is
  # where the configured R3D-14's res3 starts.
  with pytest.raises(checkpoint_restore.RestoreError,
                     match=r'variable res3_0_a/kernel:0 has shape'):
    checkpoint_restore.restore_backbone(model.backbone, path)
  with pytest.raises(checkpoint_restore.RestoreError, match='no such'):
    checkpoint_restore.restore_backbone(model.backbone, str(tmp_path / 'nope'))


def test_residual_frame_checkpoint_needs_a_residual_frame_encoder(tmp_path):
  """RGB and residual-frame encoders have the same variables: the pretraining
  run's params.yaml decides, and a mismatch fails naming the field."""
  _, folder = _pretrained_checkpoint(tmp_path, 0.125)
  written = exp_factory.get_exp_config('cvrl_pretrain_demo')
  written.task.model.backbone.cvrl_r3d.input_frames = 'difference'
  train_utils.serialize_config(written, folder)  # as train_lib writes it
  params = small(exp_factory.get_exp_config('cvrl_linear_eval_demo'),
                 init_checkpoint=folder)
  task = task_factory.get_task(params.task)
  with pytest.raises(checkpoint_restore.RestoreError,
                     match=r"input_frames='difference' .* has 'rgb'"):
    task.initialize(task.build_model())
  params.task.model.backbone.cvrl_r3d.input_frames = 'difference'
  task = task_factory.get_task(params.task)
  model = task.build_model()
  task.initialize(model)  # restores
  assert checkpoint_restore.input_frames_of(model.backbone) == 'difference'
  os.remove(os.path.join(folder, 'params.yaml'))  # unknown: not checked
  params.task.model.backbone.cvrl_r3d.input_frames = 'rgb'
  task = task_factory.get_task(params.task)
  task.initialize(task.build_model())


EVAL_EXPERIMENTS = sorted(
    name for name in exp_factory._REGISTERED_CONFIGS  # pylint: disable=protected-access
    if name.startswith('cvrl_') and not name.startswith(('cvrl_pretrain',
                                                         'cvrl_ava')))


def test_every_protocol_is_registered():
  assert {'cvrl_linear_eval_k400', 'cvrl_linear_eval_k600',
          'cvrl_semi_supervised_k400_1pct', 'cvrl_semi_supervised_k400_10pct',
          'cvrl_ucf101_finetune', 'cvrl_ucf101_linear_eval',
          'cvrl_hmdb51_finetune', 'cvrl_hmdb51_linear_eval',
          'cvrl_supervised_k400', 'cvrl_supervised_k600',
          'cvrl_linear_eval_demo'} <= set(EVAL_EXPERIMENTS)


@pytest.mark.parametrize('name', EVAL_EXPERIMENTS)
def test_experiment_builds_and_runs_a_step_on_the_small_model(name):
  params = exp_factory.get_exp_config(name)
  params.validate()
  params.task.validate()
  val = params.task.validation_data
  views = val.num_test_clips * val.num_test_crops
  params = small(params, init_checkpoint='', random_backbone=True)
  task = task_factory.get_task(params.task)
  model = task.build_model()
  optimizer = tf_keras.optimizers.SGD(0.1)
  logs = task.train_step(batch(), model, optimizer, task.build_metrics())
  assert np.isfinite(float(logs['loss']))
  logs = task.validation_step(batch(size=2, views=views), model,
                              task.build_metrics(training=False))
  assert 0.0 <= float(logs['top_1_accuracy']) <= 1.0


@pytest.mark.parametrize('name,lr,epochs,batch_size,frozen', [
    ('cvrl_linear_eval_k400', 32.0, 100, 1024, True),
    ('cvrl_semi_supervised_k400_1pct', 0.2, 100, 1024, False),
    ('cvrl_semi_supervised_k400_10pct', 0.2, 50, 1024, False),
    ('cvrl_ucf101_finetune', 0.16, 50, 128, False),
    ('cvrl_ucf101_linear_eval', 0.8, 50, 128, True),
    ('cvrl_hmdb51_finetune', 0.16, 50, 128, False),
    ('cvrl_hmdb51_linear_eval', 0.2, 50, 128, True),
    ('cvrl_supervised_k400', 0.8, 200, 1024, False),
])
def test_paper_recipes(name, lr, epochs, batch_size, frozen):
  params = exp_factory.get_exp_config(name)
  assert params.trainer.epochs == epochs
  launch.prepare(params, precision.Devices())
  task = params.task
  lr_config = params.trainer.optimizer_config.learning_rate.cosine
  assert lr_config.initial_learning_rate == lr
  assert task.train_data.global_batch_size == batch_size
  assert params.trainer.train_steps == round(
      epochs * task.train_data.num_examples / batch_size)
  assert task.freeze_backbone == frozen
  assert task.model.head.normalize_features == frozen  # linear eval only
  assert task.train_data.num_frames == 32 and task.train_data.frame_stride == 2
  assert (task.validation_data.num_test_clips,
          task.validation_data.num_test_crops) == (10, 3)
  if frozen:
    assert task.l2_weight_decay == 0.0
  warmup = params.trainer.optimizer_config.warmup.type
  assert (warmup is None) == ('semi_supervised' in name)
  if 'supervised_k' in name and 'semi' not in name:
    assert task.random_backbone and task.model.head.dropout_rate == 0.5


def test_semi_supervised_steps_follow_the_subset_size():
  ten = exp_factory.get_exp_config('cvrl_semi_supervised_k400_10pct')
  full = base.dataset('k400').train_examples
  assert ten.task.train_data.num_examples == round(0.1 * full)


def test_an_empty_batch_gives_empty_predictions():
  # What a replica gets from the last partial batch of a multi-replica
  # evaluation; TF's CPU Conv3D alone fails on it (see classifier.call).
  params = small(exp_factory.get_exp_config('cvrl_linear_eval_demo'),
                 init_checkpoint='', random_backbone=True)
  model = task_factory.get_task(params.task).build_model()
  predict = tf.function(lambda x: model(x, training=False))
  spec = tf.TensorSpec([None, FRAMES, SIZE, SIZE, 3])
  got = predict.get_concrete_function(spec)(tf.zeros([0, FRAMES, SIZE, SIZE,
                                                      3]))
  assert got.shape == (0, CLASSES)
  one = predict.get_concrete_function(spec)(tf.zeros([1, FRAMES, SIZE, SIZE,
                                                      3]))
  assert one.shape == (1, CLASSES)
