"""The stem's Conv3D as 2D convolutions over temporal taps: the same
outputs and gradients as TensorFlow's own 3D convolution (the reference), the same weights, and a model built either way restores
the other's checkpoint."""

import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from cvrl.configs import modeling as modeling_cfg
from cvrl.modeling import r3d
from cvrl.modeling import tap_conv3d
from tests.conftest import REPO_ROOT

CASES = [
    # (input [N, T, H, W, C], kernel (t, h, w), strides, dilations, padding)
    ((2, 15, 17, 16, 3), (5, 7, 7), (2, 2, 2), (1, 1, 1), 'same'),
    ((3, 16, 12, 12, 3), (5, 7, 7), (2, 2, 2), (1, 1, 1), 'same'),
    ((2, 7, 9, 8, 4), (3, 1, 1), (1, 1, 1), (1, 1, 1), 'same'),
    ((2, 8, 9, 9, 4), (1, 3, 3), (1, 2, 2), (1, 1, 1), 'same'),
    ((2, 9, 10, 10, 2), (3, 3, 3), (1, 1, 1), (1, 2, 2), 'same'),
    ((1, 9, 10, 11, 3), (3, 5, 3), (2, 1, 2), (1, 1, 1), 'valid'),
    ((2, 4, 8, 8, 3), (5, 7, 7), (2, 2, 2), (1, 1, 1), 'same'),  # T < kt
]


def _operands(shape, kernel, seed):
  inputs = tf.random.stateless_normal(shape, [seed, 0])
  weights = tf.random.stateless_normal(kernel + (shape[-1], 5), [seed, 1])
  return inputs, weights


def _reference(inputs, weights, strides, dilations, padding):
  # What Keras' Conv3D calls (dilated CPU convolutions go through
  # space-to-batch there: tf.nn.conv3d has no CPU dilation).
  return tf.nn.convolution(inputs, weights, strides, padding.upper(),
                           dilations=dilations)


@pytest.mark.parametrize('case', range(len(CASES)))
def test_outputs_and_gradients_are_conv3ds(case):
  shape, kernel, strides, dilations, padding = CASES[case]
  inputs, weights = _operands(shape, kernel, case)

  @tf.function  # as in a train step (eager Conv3D gradients need a graph)
  def outputs_and_gradients(conv):
    with tf.GradientTape() as tape:
      tape.watch([inputs, weights])
      outputs = conv(inputs, weights, strides, dilations, padding)
      # A loss that weighs every output differently.
      probe = tf.random.stateless_normal(tf.shape(outputs), [case, 2])
      loss = tf.reduce_sum(outputs * probe)
    return (outputs,) + tuple(tape.gradient(loss, [weights, inputs]))

  expected = outputs_and_gradients(_reference)
  got = outputs_and_gradients(
      lambda x, w, s, d, p: tap_conv3d.conv3d_as_taps(x, w, s, p, d))
  assert got[0].shape == expected[0].shape
  for name, a, b in zip(('outputs', 'kernel gradient', 'input gradient'),
                        got, expected):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3, err_msg=name)


def test_unknown_dimensions_and_xla():
  """Traced with every dimension unknown (as the backbone is built), and
  compiled with XLA (jit_compile train steps)."""
  shape, kernel, strides, dilations, padding = CASES[0]
  inputs, weights = _operands(shape, kernel, 7)
  expected = _reference(inputs, weights, strides, dilations, padding)
  spec = tf.TensorSpec([None] * 4 + [shape[-1]])

  def conv(x):
    return tap_conv3d.conv3d_as_taps(x, weights, strides, padding, dilations)
  for function in (tf.function(conv, input_signature=[spec]),
                   tf.function(conv, jit_compile=True)):
    np.testing.assert_allclose(function(inputs), expected, rtol=1e-4,
                               atol=1e-4)
  empty = tf.function(conv, input_signature=[spec])(
      tf.zeros([0] + list(shape[1:])))
  assert empty.shape[0] == 0


def _backbone(layer_class, monkeypatch):
  monkeypatch.setattr(r3d._Layers3D, 'stem_conv',  # pylint: disable=protected-access
                      staticmethod(layer_class))
  config = modeling_cfg.R3DConfig(depth=14, width_multiplier=0.25)
  return r3d.build_r3d(config, input_shape=(8, 32, 32, 3))


def test_stem_on_cpu_is_taps_and_shares_conv3ds_weights(monkeypatch,
                                                         tmp_path):
  stem = r3d.build_r3d(modeling_cfg.R3DConfig(
      depth=14, width_multiplier=0.25)).get_layer('stem_conv')
  assert isinstance(stem, tap_conv3d.TapConv3D)  # no accelerator here
  plain = _backbone(tf_keras.layers.Conv3D, monkeypatch)
  taps = _backbone(tap_conv3d.TapConv3D, monkeypatch)
  assert type(plain.get_layer('stem_conv')) is tf_keras.layers.Conv3D  # pylint: disable=unidiomatic-typecheck
  assert ([w.name for w in plain.weights] == [w.name for w in taps.weights])
  path = tf.train.Checkpoint(backbone=plain).save(str(tmp_path / 'plain'))
  tf.train.Checkpoint(backbone=taps).restore(path).assert_consumed()
  clips = tf.random.stateless_uniform([2, 8, 32, 32, 3], [3, 4])
  np.testing.assert_allclose(taps(clips, training=False),
                             plain(clips, training=False), rtol=1e-4,
                             atol=1e-5)


def test_choosing_the_stem_leaves_the_runtime_unconfigured():
  """Asking whether an accelerator is there must not initialise
  TensorFlow's devices (a user may set GPU memory growth or logical
  devices afterwards: 'cannot be modified after being initialized'); under
  a strategy of CPU replicas the stem is still taps. A fresh process,
  since this one's runtime is running."""
  code = '''
import tensorflow as tf
from cvrl.configs import modeling
from cvrl.modeling import r3d, tap_conv3d
assert not tap_conv3d.accelerator_visible()
cpu = tf.config.list_physical_devices('CPU')[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
with strategy.scope():
  assert not tap_conv3d.accelerator_visible()
  stem = r3d.build_r3d(modeling.R3DConfig(
      depth=14, width_multiplier=0.25)).get_layer('stem_conv')
  assert isinstance(stem, tap_conv3d.TapConv3D)
print('ok')
'''
  result = subprocess.run([sys.executable, '-c', code], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300,
                          check=False)
  assert result.stdout.strip().endswith('ok'), result.stderr[-3000:]


def test_the_strategy_in_scope_decides_over_the_devices_the_host_shows(
    monkeypatch):
  """A TPU VM run without --tpu: the host lists TPU devices, the job's
  strategy computes on the CPU, so the stem is built as taps, as the
  strategy and the precision decide (cvrl.configs.strategy)."""
  real = tf.config.list_physical_devices

  def with_a_tpu(kind=None):
    found = real(kind)
    if kind == 'TPU':
      return [tf.config.PhysicalDevice('/physical_device:TPU:0', 'TPU')]
    return found
  monkeypatch.setattr(tf.config, 'list_physical_devices', with_a_tpu)
  assert tap_conv3d.accelerator_visible()  # no strategy: the host's TPU
  with tf.distribute.OneDeviceStrategy('/cpu:0').scope():
    assert not tap_conv3d.accelerator_visible()
    stem = r3d.build_r3d(modeling_cfg.R3DConfig(
        depth=14, width_multiplier=0.25)).get_layer('stem_conv')
    assert isinstance(stem, tap_conv3d.TapConv3D)
