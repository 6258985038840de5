"""ImageNet inflation: the identical-frames invariant and the weight maps."""

import os

import numpy as np
import pytest
import tf_keras

from cvrl.configs import modeling as modeling_cfg
from cvrl.modeling import checkpoint_restore
from cvrl.modeling import inflation
from cvrl.modeling import r3d
from tests.conftest import run_module

SIZE = 64


def _randomise_bn(model, seed=0):
  """Non-trivial BN statistics, so that copying them is really tested."""
  rng = np.random.default_rng(seed)
  for layer in model.layers:
    if isinstance(layer, tf_keras.layers.BatchNormalization):
      shapes = [w.shape for w in layer.get_weights()]
      layer.set_weights([rng.uniform(0.5, 1.5, shapes[0]),
                         rng.normal(0, 0.1, shapes[1]),
                         rng.normal(0, 0.1, shapes[2]),
                         rng.uniform(0.5, 1.5, shapes[3])])


def _pair(config, mode):
  twin = r3d.build_resnet2d_twin(config, input_shape=(SIZE, SIZE, 3))
  _randomise_bn(twin)
  video = r3d.build_r3d(config, input_shape=(None, SIZE, SIZE, 3))
  inflation.inflate_weights(twin, video, mode)
  frame = np.random.default_rng(1).uniform(size=(2, SIZE, SIZE, 3))
  return twin, video, frame.astype(np.float32)


def test_identical_frames_give_the_2d_feature_where_padding_does_not_reach():
  config = modeling_cfg.R3DConfig(depth=50, width_multiplier=0.25)
  twin, video, frame = _pair(config, 'mean')
  want = twin(frame, training=False).numpy()
  # 64 frames -> 32 steps after the stem; res4/res5's nine 3-tap convs and
  # the stem's 5 taps reach at most 10 steps from the middle one.
  clip = np.repeat(frame[:, None], 64, axis=1)
  res5 = tf_keras.Model(video.inputs, video.endpoints['res5'])(
      clip, training=False).numpy()
  middle = res5[:, res5.shape[1] // 2].mean(axis=(1, 2))
  np.testing.assert_allclose(middle, want, rtol=1e-4, atol=1e-4 * abs(
      want).max())
  # Steps the zero padding reaches differ: the test can tell.
  assert np.abs(res5[:, 0].mean(axis=(1, 2)) - want).max() > 1e-2


def test_identical_frames_give_the_2d_pooled_feature_exactly():
  # With every temporal kernel 1 nothing is padded in time: the whole pooled
  # feature equals the 2D one; 'center' inflation does so for any kernel.
  flat = modeling_cfg.R3DConfig(depth=14, width_multiplier=0.25,
                                stem_temporal_kernel=1,
                                stage_temporal_kernels=(1, 1, 1, 1))
  twin, video, frame = _pair(flat, 'mean')
  clip = np.repeat(frame[:, None], 8, axis=1)
  np.testing.assert_allclose(video(clip, training=False).numpy(),
                             twin(frame, training=False).numpy(),
                             rtol=1e-4, atol=1e-5)
  paper = modeling_cfg.R3DConfig(depth=14, width_multiplier=0.25)
  twin, video, frame = _pair(paper, 'center')
  clip = np.repeat(frame[:, None], 16, axis=1)
  np.testing.assert_allclose(video(clip, training=False).numpy(),
                             twin(frame, training=False).numpy(),
                             rtol=1e-4, atol=1e-5)


def test_inflated_kernel_sums_to_the_2d_kernel():
  kernel = np.random.default_rng(0).normal(size=(3, 3, 4, 5))
  inflated = inflation.inflate_kernel(kernel, 5, 'mean')
  assert inflated.shape == (5, 3, 3, 4, 5)
  np.testing.assert_allclose(inflated.sum(axis=0), kernel)
  np.testing.assert_allclose(inflated[2], kernel / 5)
  centre = inflation.inflate_kernel(kernel, 3, 'center')
  np.testing.assert_array_equal(centre[1], kernel)
  assert not centre[0].any() and not centre[2].any()


def test_a_twin_of_another_width_fails_naming_the_layer():
  twin = r3d.build_resnet2d_twin(modeling_cfg.R3DConfig(
      depth=14, width_multiplier=0.5))
  video = r3d.build_r3d(modeling_cfg.R3DConfig(depth=14,
                                               width_multiplier=0.25))
  with pytest.raises(inflation.InflationError, match='layer stem_conv'):
    inflation.inflate_weights(twin, video)
  deeper = r3d.build_resnet2d_twin(modeling_cfg.R3DConfig(
      depth=50, width_multiplier=0.25))
  with pytest.raises(inflation.InflationError, match='res2_1'):
    inflation.inflate_weights(deeper, video)


def test_keras_applications_resnet50_maps_onto_the_twin():
  app = tf_keras.applications.ResNet50(include_top=False, weights=None,
                                       input_shape=(SIZE, SIZE, 3))
  _randomise_bn(app, seed=3)
  rng = np.random.default_rng(4)
  for layer in app.layers:
    if isinstance(layer, tf_keras.layers.Conv2D):
      kernel, bias = layer.get_weights()
      layer.set_weights([kernel, rng.normal(0, 0.1, bias.shape)])
  twin = r3d.build_resnet2d_twin(modeling_cfg.R3DConfig(depth=50))
  assert inflation.keras_applications_to_twin(app, twin) == 53 * 5
  # Conv kernels copied; conv bias and epsilon folded into BN exactly:
  # keras BN(z + bias) == twin BN(z) for any pre-activation z.
  for twin_conv, app_conv in (('stem_conv', 'conv1_conv'),
                              ('res3_0_b', 'conv3_block1_2_conv'),
                              ('res5_0_proj', 'conv5_block1_0_conv')):
    twin_bn = 'stem_bn' if twin_conv == 'stem_conv' else twin_conv + '_bn'
    app_bn = app_conv[:-4] + 'bn'
    kernel, bias = app.get_layer(app_conv).get_weights()
    np.testing.assert_array_equal(twin.get_layer(twin_conv).kernel.numpy(),
                                  kernel)
    z = rng.normal(size=(1, 2, 2, kernel.shape[-1])).astype(np.float32)
    np.testing.assert_allclose(
        twin.get_layer(twin_bn)(z, training=False).numpy(),
        app.get_layer(app_bn)(z + bias, training=False).numpy(),
        rtol=1e-5, atol=1e-5)


def test_inflate_imagenet_command_writes_a_restorable_backbone(tmp_path):
  config = modeling_cfg.R3DConfig(depth=14, width_multiplier=0.25)
  twin = r3d.build_resnet2d_twin(config)
  _randomise_bn(twin)
  weights = str(tmp_path / 'twin.weights.h5')
  twin.save_weights(weights)
  output = str(tmp_path / 'inflated' / 'r3d14')
  result = run_module('cvrl.tools.inflate_imagenet', '--source=twin',
                      f'--weights={weights}', '--depth=14',
                      '--width_multiplier=0.25', f'--output={output}')
  assert 'weights inflated' in result.stdout
  video = r3d.build_r3d(config)
  checkpoint_restore.restore_backbone(video, os.path.dirname(output))
  np.testing.assert_allclose(
      video.get_layer('res4_0_a').kernel.numpy(),
      inflation.inflate_kernel(twin.get_layer('res4_0_a').kernel.numpy(), 3))
  np.testing.assert_array_equal(
      video.get_layer('res5_0_c_bn').moving_variance.numpy(),
      twin.get_layer('res5_0_c_bn').moving_variance.numpy())
  bad = run_module('cvrl.tools.inflate_imagenet', '--source=twin',
                   f'--weights={weights}', '--depth=50',
                   f'--output={output}2', check=False)
  assert bad.returncode == 1 and 'inflate_imagenet: error' in bad.stderr
