"""R3D encoders: paper Table 1 structure and Table 2 parameter counts."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from official.vision.modeling.backbones import factory

from cvrl.configs import modeling as modeling_cfg
from cvrl.modeling import cvrl_model
from cvrl.modeling import r3d


@pytest.mark.parametrize('depth,width,millions', [(50, 1.0, 31.7),
                                                   (101, 1.0, 59.7),
                                                   (152, 2.0, 328.0)])
def test_parameter_counts_match_table_2(depth, width, millions):
  model = r3d.build_r3d(modeling_cfg.R3DConfig(depth=depth,
                                               width_multiplier=width),
                        input_shape=(16, 224, 224, 3))
  # "To 0.1M": every layer widened, BN statistics counted as TF does.
  assert abs(r3d.count_params(model) / 1e6 - millions) < 0.1
  assert model.output_shape == (None, int(2048 * width))
  tf_keras.backend.clear_session()


def test_table_1_layers_and_shapes():
  model = r3d.build_r3d(modeling_cfg.R3DConfig(depth=50),
                        input_shape=(16, 224, 224, 3))
  stem = model.get_layer('stem_conv')
  assert stem.kernel_size == (5, 7, 7) and stem.strides == (2, 2, 2)
  assert stem.filters == 64
  pool = model.get_layer('stem_pool')
  assert pool.pool_size == (1, 3, 3) and pool.strides == (1, 2, 2)
  for stage, t_kernel in ((2, 1), (3, 1), (4, 3), (5, 3)):
    assert model.get_layer(f'res{stage}_0_a').kernel_size == (t_kernel, 1, 1)
    assert model.get_layer(f'res{stage}_0_b').kernel_size == (1, 3, 3)
  blocks = {s: len([l for l in model.layers
                    if l.name.startswith(f'res{s}_') and l.name.endswith('_a')])
            for s in (2, 3, 4, 5)}
  assert blocks == {2: 3, 3: 4, 4: 6, 5: 3}
  # 16 frames -> 8 after conv1; 224 -> 7 after the 5 spatial halvings.
  assert tuple(model.endpoints['res5'].shape[1:]) == (8, 7, 7, 2048)
  assert tuple(model.endpoints['res2'].shape[1:]) == (8, 56, 56, 256)
  tf_keras.backend.clear_session()


def test_width_multiplies_every_layer():
  one = r3d.build_r3d(modeling_cfg.R3DConfig(depth=14, width_multiplier=1.0))
  two = r3d.build_r3d(modeling_cfg.R3DConfig(depth=14, width_multiplier=2.0))
  for name in ('stem_conv', 'res3_0_b', 'res5_0_c'):
    assert two.get_layer(name).filters == 2 * one.get_layer(name).filters
  assert two.output_shape[-1] == 4096


def test_registered_with_model_garden_factory():
  config = modeling_cfg.CVRLModelConfig()
  config.backbone.cvrl_r3d.depth = 14
  config.backbone.cvrl_r3d.width_multiplier = 0.25
  specs = tf_keras.layers.InputSpec(shape=(None, 4, 32, 32, 3))
  backbone = factory.build_backbone(specs, config.backbone,
                                    config.norm_activation)
  out = backbone(tf.zeros([2, 4, 32, 32, 3]), training=False)
  assert out.shape == (2, 512)
  synced = [l for l in backbone.layers
            if isinstance(l, tf_keras.layers.BatchNormalization)]
  assert synced and all(l.synchronized for l in synced)


def test_projection_head_layers():
  config = modeling_cfg.CVRLModelConfig()
  config.backbone.cvrl_r3d.depth = 14
  config.backbone.cvrl_r3d.width_multiplier = 0.25
  for hidden in (0, 1, 3):
    config.projection_head.num_hidden_layers = hidden
    model = cvrl_model.build_cvrl_model(config, (4, 32, 32, 3))
    dense = [l for l in model.head.layers
             if isinstance(l, tf_keras.layers.Dense)]
    bns = [l for l in model.head.layers
           if isinstance(l, tf_keras.layers.BatchNormalization)]
    assert len(dense) == hidden + 1 and len(bns) == hidden
    assert all(d.units == 512 for d in dense[:-1])  # 2048 x width
    out = model(tf.zeros([2, 4, 32, 32, 3]), training=False)
    assert out['embeddings'].shape == (2, 128)
    assert out['features'].shape == (2, 512)
  assert set(model.checkpoint_items) == {'backbone'}


def test_bad_depth_names_the_field():
  with pytest.raises(ValueError, match='cvrl_r3d.depth'):
    r3d.build_r3d(modeling_cfg.R3DConfig(depth=34))


def test_zero_init_residual_makes_blocks_identity_at_start():
  model = r3d.build_r3d(modeling_cfg.R3DConfig(depth=14))
  gammas = model.get_layer('res3_0_c_bn').gamma.numpy()
  assert np.all(gammas == 0)


def test_difference_input_ignores_what_stands_still():
  config = modeling_cfg.R3DConfig(depth=14, width_multiplier=0.25,
                                  input_frames='difference')
  tf.random.set_seed(0)
  model = r3d.build_r3d(config, input_shape=(8, 32, 32, 3))
  rng = np.random.default_rng(0)
  clips = rng.uniform(0, 1, (2, 8, 32, 32, 3)).astype(np.float32)
  still = rng.uniform(-1, 1, (2, 1, 32, 32, 3)).astype(np.float32)
  # A still image added to every frame is invisible to residual frames ...
  np.testing.assert_allclose(model(clips + still).numpy(),
                             model(clips).numpy(), atol=1e-5)
  # ... and exactly what an RGB network sees first.
  rgb = r3d.build_r3d(modeling_cfg.R3DConfig(depth=14, width_multiplier=0.25),
                      input_shape=(8, 32, 32, 3))
  assert np.abs(rgb(clips + still).numpy() - rgb(clips).numpy()).max() > 1e-2
  difference = model.get_layer('frame_difference')(clips).numpy()
  np.testing.assert_allclose(difference, clips[:, 1:] - clips[:, :-1])
  # Same weights: an RGB checkpoint restores into the residual-frame net.
  assert [w.shape for w in model.weights] == [w.shape for w in rgb.weights]
  # 8 frames -> 7 differences -> 4 after the stem's temporal stride 2.
  assert model.get_layer('stem_conv').output.shape[1] == 4


def test_bad_input_frames_names_the_field():
  with pytest.raises(ValueError, match='cvrl_r3d.input_frames'):
    r3d.build_r3d(modeling_cfg.R3DConfig(depth=14, input_frames='flow'))
  with pytest.raises(ValueError, match='2D twin'):
    r3d.build_resnet2d_twin(modeling_cfg.R3DConfig(
        depth=14, input_frames='difference'))
