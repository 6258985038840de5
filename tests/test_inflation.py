"""ImageNet inflation: the identical-frames invariant and the weight maps."""

import numpy as np
import pytest
import tensorflow as tf
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
                      '--width_multiplier=0.25', f'--output_dir={output}')
  assert 'weights inflated' in result.stdout
  video = r3d.build_r3d(config)
  checkpoint_restore.restore_backbone(video, output)
  np.testing.assert_allclose(
      video.get_layer('res4_0_a').kernel.numpy(),
      inflation.inflate_kernel(twin.get_layer('res4_0_a').kernel.numpy(), 3))
  np.testing.assert_array_equal(
      video.get_layer('res5_0_c_bn').moving_variance.numpy(),
      twin.get_layer('res5_0_c_bn').moving_variance.numpy())
  bad = run_module('cvrl.tools.inflate_imagenet', '--source=twin',
                   f'--weights={weights}', '--depth=50',
                   f'--output_dir={output}2', check=False)
  assert bad.returncode == 1 and 'inflate_imagenet: error' in bad.stderr


def _simclr_tf1_resnet(image, depth, width):
  """SimCLR's TF1 ResNet (google-research/simclr resnet.py, sk_ratio=0) in
  TF1 layers, so that TF1 names the variables by creation order as in the
  released checkpoints: conv2d_fixed_padding pads (k-1)//2 before and uses
  VALID when strided, BN epsilon 1e-5, stride in the 3x3 conv."""
  from tf_keras.src.legacy_tf_layers import convolutional
  from tf_keras.src.legacy_tf_layers import normalization
  from tf_keras.src.legacy_tf_layers import pooling

  def conv(x, filters, kernel, strides):
    if strides > 1:
      begin = (kernel - 1) // 2
      x = tf.pad(x, [[0, 0], [begin, kernel - 1 - begin],
                     [begin, kernel - 1 - begin], [0, 0]])
    return convolutional.conv2d(x, filters, kernel, strides, use_bias=False,
                                padding='SAME' if strides == 1 else 'VALID')

  def bn(x, relu=True):
    x = normalization.batch_normalization(x, epsilon=1e-5, training=False)
    return tf.nn.relu(x) if relu else x

  with tf.compat.v1.variable_scope('base_model'):
    x = bn(conv(image, int(64 * width), 7, 2))
    x = pooling.max_pooling2d(x, 3, 2, padding='SAME')
    for stage, count in enumerate(modeling_cfg.BLOCK_COUNTS[depth]):
      filters = int(64 * 2 ** stage * width)
      for block in range(count):
        strides = 2 if stage > 0 and block == 0 else 1
        shortcut = x
        if block == 0:
          shortcut = bn(conv(x, 4 * filters, 1, strides), relu=False)
        y = bn(conv(x, filters, 1, 1))
        y = bn(conv(y, filters, 3, strides))
        y = bn(conv(y, 4 * filters, 1, 1), relu=False)
        x = tf.nn.relu(y + shortcut)
    return tf.reduce_mean(x, [1, 2])


def test_a_simclr_checkpoint_maps_onto_the_twin_and_gives_its_features(
    tmp_path):
  # At odd sizes TF's 'same' padding of a stride-2 layer equals SimCLR's
  # explicit (k-1)//2 padding, so the twin must compute SimCLR's features.
  depth, width, size = 14, 0.25, 65
  image = np.random.default_rng(5).uniform(size=(2, size, size, 3)).astype(
      np.float32)
  graph = tf.Graph()
  with graph.as_default():
    features = _simclr_tf1_resnet(tf.constant(image), depth, width)
    variables = tf.compat.v1.global_variables()
    rng = np.random.default_rng(6)
    assigns = [v.assign(rng.uniform(0.5, 1.5, v.shape) if 'variance' in v.name
                        or 'gamma' in v.name else rng.normal(0, 0.2, v.shape))
               for v in variables]
    saver = tf.compat.v1.train.Saver()
    with tf.compat.v1.Session() as session:
      session.run(assigns)
      want = session.run(features)
      prefix = saver.save(session, str(tmp_path / 'model.ckpt'),
                          global_step=225206)
  assert 'base_model/conv2d_16/kernel:0' in {v.name for v in variables}
  twin = r3d.build_resnet2d_twin(modeling_cfg.R3DConfig(
      depth=depth, width_multiplier=width))
  assert inflation.simclr_to_twin(prefix, twin, depth) == 17 * 5
  np.testing.assert_allclose(twin(image, training=False).numpy(), want,
                             rtol=1e-4, atol=1e-4 * np.abs(want).max())
  # The map is by creation order: a twin of another depth is refused.
  deeper = r3d.build_resnet2d_twin(modeling_cfg.R3DConfig(
      depth=50, width_multiplier=width))
  with pytest.raises(inflation.InflationError, match='17 convolutions'):
    inflation.simclr_to_twin(prefix, deeper, 50)
  with pytest.raises(inflation.InflationError, match='0 convolutions'):
    inflation.simclr_to_twin(prefix, twin, depth, 'ema_model/base_model/')
  # The command inflates it into a restorable R3D.
  output = str(tmp_path / 'inflated' / 'r3d14')
  result = run_module('cvrl.tools.inflate_imagenet', '--source=simclr',
                      f'--weights={prefix}', f'--depth={depth}',
                      f'--width_multiplier={width}', f'--output_dir={output}')
  assert 'weights inflated' in result.stdout
  video = r3d.build_r3d(modeling_cfg.R3DConfig(depth=depth,
                                               width_multiplier=width))
  checkpoint_restore.restore_backbone(video, output)
  np.testing.assert_allclose(video.get_layer('res4_0_a').kernel.numpy()[1],
                             twin.get_layer('res4_0_a').kernel.numpy() / 3,
                             rtol=1e-6)
