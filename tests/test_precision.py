"""Precision that fits the device: 'auto' resolution, and float16 steps."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from official.core import config_definitions as cfg
from official.core import exp_factory
from official.core import task_factory
from official.modeling import performance

from cvrl import registry_imports  # pylint: disable=unused-import  # noqa: F401
from cvrl.configs import launch
from cvrl.configs import precision
from tests.conftest import small_pretrain_config

TPU = precision.Devices(tpu=True)
CPU = precision.Devices()


def gpus(*capabilities):
  return precision.Devices(gpu_capabilities=tuple(capabilities))


@pytest.mark.parametrize('devices,want', [
    (TPU, 'bfloat16'),
    (gpus((8, 0)), 'bfloat16'),          # A100
    (gpus((9, 0), (9, 0)), 'bfloat16'),  # H100 / H200
    (gpus((8, 9)), 'bfloat16'),          # L4
    (gpus((7, 0)), 'float16'),           # V100
    (gpus((7, 5)), 'float16'),           # T4
    (gpus((8, 0), (7, 5)), 'float16'),   # mixed: the oldest decides
    (CPU, 'float32'),
])
def test_auto_resolves_for_each_device_kind(devices, want):
  dtype, why = precision.resolve('auto', devices)
  assert dtype == want and why.startswith('auto: ')
  if want == 'float16':
    assert 'loss scaling' in why


def test_explicit_values_win_and_bfloat16_on_cpu_warns():
  assert precision.resolve('float32', TPU) == ('float32', 'set explicitly')
  assert precision.resolve('float16', gpus((9, 0)))[0] == 'float16'
  dtype, why = precision.resolve('bfloat16', CPU)
  assert dtype == 'bfloat16' and 'WARNING' in why and 'emulated' in why
  assert 'WARNING' not in precision.resolve('bfloat16', TPU)[1]
  assert precision.resolve(None, TPU)[0] == 'float32'  # Model Garden's default


def test_input_dtype_follows_unless_explicit():
  params = exp_factory.get_exp_config('cvrl_pretrain_k400_200ep')
  params.task.validation_data.dtype = 'float32'
  line = precision.apply(params, gpus((7, 0)))
  assert params.runtime.mixed_precision_dtype == 'float16'
  assert params.task.train_data.dtype == 'float16'
  assert params.task.validation_data.dtype == 'float32'
  assert 'precision: float16 on gpu' in line and 'float32 (explicit)' in line


def test_local_devices_reads_compute_capabilities(monkeypatch):
  fake = [tf.config.PhysicalDevice('/physical_device:GPU:0', 'GPU'),
          tf.config.PhysicalDevice('/physical_device:GPU:1', 'GPU')]
  monkeypatch.setattr(tf.config, 'list_physical_devices',
                      lambda kind=None: fake if kind == 'GPU' else [])
  monkeypatch.setattr(tf.config.experimental, 'get_device_details',
                      lambda device: {'compute_capability': (7, 5)})
  found = precision.local_devices(None)
  assert found.kind == 'gpu' and found.gpu_capabilities == ((7, 5), (7, 5))
  assert precision.local_devices('grpc://10.0.0.2:8470').kind == 'tpu'


def test_prepare_writes_the_choice_into_the_config():
  params = exp_factory.get_exp_config('cvrl_linear_eval_k400')
  assert params.runtime.mixed_precision_dtype == 'auto'
  lines = launch.prepare(params, gpus((9, 0)))
  assert params.runtime.mixed_precision_dtype == 'bfloat16'
  assert params.task.train_data.dtype == 'bfloat16'
  assert any(l.startswith('precision: bfloat16 on gpu') for l in lines)
  params.lock()
  assert 'auto' not in str(params.as_dict()['runtime'])


@pytest.mark.parametrize('devices,want', [
    (TPU, 'device'), (gpus((8, 0)), 'device'), (CPU, 'host')])
def test_augment_on_auto_follows_the_compute_devices(devices, want):
  """The paper's recipes: per-pixel work on the accelerator when there is
  one, on the host otherwise; resolved by prepare, logged, in params.yaml."""
  params = exp_factory.get_exp_config('cvrl_pretrain_k600')
  assert params.task.train_data.augment_on == 'auto'
  lines = launch.prepare(params, devices)
  for name in ('train_data', 'validation_data'):
    assert getattr(params.task, name).augment_on == want
    assert f'task.{name}.augment_on: auto -> {want} (computing on ' in (
        '\n'.join(lines))
  params.lock()
  assert "augment_on: auto" not in str(params.as_dict())


def test_unresolved_auto_input_names_the_field():
  from cvrl.configs import base  # pylint: disable=g-import-not-at-top
  from cvrl.data import pipelines  # pylint: disable=g-import-not-at-top
  data = exp_factory.get_exp_config('cvrl_pretrain_k600').task.train_data
  with pytest.raises(base.ConfigError, match="augment_on='auto'"):
    pipelines.build_dataset(data.replace(input_path='x-*.tfrecord'))


def _small_step(dtype, steps=2, loss_scale=None):
  """Weights and losses after `steps` train steps in `dtype` (XLA-compiled:
  TF has no float16 MaxPool3D CPU kernel). loss_scale: None is dynamic
  (Model Garden's default for float16), a number a fixed scale."""
  performance.set_mixed_precision_policy(dtype)
  try:
    task = task_factory.get_task(small_pretrain_config(jit_compile=True))
    model = task.build_model()
    optimizer = task.create_optimizer(
        exp_factory.get_exp_config('cvrl_pretrain_demo').trainer
        .optimizer_config.replace(
            learning_rate={'type': 'constant',
                           'constant': {'learning_rate': 0.1}}),
        cfg.RuntimeConfig(mixed_precision_dtype=dtype,
                          loss_scale=loss_scale))
    before = [v.numpy().copy() for v in model.trainable_variables]
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(steps):
      images = tf.constant(rng.uniform(size=(8, 4, 32, 32, 3)), dtype)
      logs = task.train_step({'image': images}, model, optimizer,
                             task.build_metrics())
      losses.append(float(logs['contrastive_loss']))
    after = [v.numpy() for v in model.trainable_variables]
    return optimizer, before, after, losses
  finally:
    tf_keras.mixed_precision.set_global_policy('float32')


def test_float16_with_dynamic_loss_scaling_skips_overflows_then_learns():
  optimizer, before, after, losses = _small_step('float16', steps=6)
  assert isinstance(optimizer, tf_keras.mixed_precision.LossScaleOptimizer)
  assert optimizer.dynamic
  assert np.all(np.isfinite(losses))
  # The scale starts at 2^15; steps whose scaled gradients overflow are
  # skipped and halve it, then the updates go through.
  assert float(optimizer.loss_scale) < 2 ** 15
  moved = sum(np.abs(a - b).max() > 0 for a, b in zip(after, before))
  assert moved == len(before)  # every variable got a finite update
  assert all(np.all(np.isfinite(a)) for a in after)


def test_float16_step_agrees_with_float32():
  # One step: at lr 0.1 on a random network, later steps amplify the first
  # step's rounding differences (the second loss differs by ~20%).
  optimizer, before, after, losses16 = _small_step('float16', steps=1,
                                                   loss_scale=256)
  assert not optimizer.dynamic and float(optimizer.loss_scale) == 256
  _, before32, after32, losses32 = _small_step('float32', steps=1)
  for a, b in zip(before, before32):
    np.testing.assert_array_equal(a, b)  # same init_seed, same start
  np.testing.assert_allclose(losses16, losses32, rtol=2e-2)
  # The updates point the same way (float16 rounding apart).
  delta16 = np.concatenate([(a - b).ravel() for a, b in zip(after, before)])
  delta32 = np.concatenate([(a - b).ravel()
                            for a, b in zip(after32, before32)])
  assert np.abs(delta16).max() > 0
  cosine = delta16 @ delta32 / (np.linalg.norm(delta16)
                                * np.linalg.norm(delta32))
  assert cosine > 0.98, cosine
