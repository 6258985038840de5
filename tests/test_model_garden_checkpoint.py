"""The authors' released encoders: Model Garden's video_ssl checkpoints read
into our R3D (and ours written in their format), proved against Model
Garden's own code.

The reference is Model Garden itself: its video_ssl task config with the
block specs of the release's cvrl_linear_eval_k600.yaml (below, as that
file writes them), its task's `build_model`, its `ResNet3D` with random
weights and random batch-norm statistics, saved as the release saves it
(`tf.train.Checkpoint(backbone=...)`), and its features: the global average
of the last endpoint on frames scaled to [0, 1].
"""

import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from official.core import exp_factory
from official.core import train_utils
from official.projects.video_ssl.tasks import linear_eval as mg_linear_eval
from official.projects.video_ssl.tasks import pretrain as mg_pretrain

from cvrl import registry_imports  # noqa: F401  pylint: disable=unused-import
from cvrl.configs import launch
from cvrl.data import eval_views
from cvrl.data import video_sources
from cvrl.eval import feature_export
from cvrl.eval import saved_model
from cvrl.modeling import checkpoint_restore
from cvrl.modeling import cvrl_model
from tests import video_records
from tests.conftest import REPO_ROOT
from tests.conftest import run_module

# official/projects/video_ssl/configs/experiments/cvrl_linear_eval_k600.yaml
# (the release's backbone, as that file sets it).
RELEASE_BACKBONE = {
    'block_specs': [
        {'temporal_kernel_sizes': [1, 1, 1], 'temporal_strides': 1,
         'use_self_gating': False},
        {'temporal_kernel_sizes': [1, 1, 1, 1], 'temporal_strides': 1,
         'use_self_gating': False},
        {'temporal_kernel_sizes': [3, 3, 3, 3, 3, 3], 'temporal_strides': 1,
         'use_self_gating': False},
        {'temporal_kernel_sizes': [3, 3, 3], 'temporal_strides': 1,
         'use_self_gating': False}],
    'model_id': 50, 'stem_conv_temporal_kernel_size': 5,
    'stem_conv_temporal_stride': 2, 'stem_pool_temporal_stride': 1}
RELEASE_PREFIX = 'r3d_1x_k600_800ep_backbone-1'


def _mg_params(experiment='video_ssl_linear_eval_kinetics600', frames=32,
               **backbone):
  params = exp_factory.get_exp_config(experiment)
  spec = dict(RELEASE_BACKBONE, **backbone)
  params.task.model.backbone.resnet_3d.override(spec, is_strict=True)
  params.task.model.backbone.type = 'resnet_3d'
  for data in (params.task.train_data, params.task.validation_data):
    data.feature_shape = (frames, None, None, 3)
  return params


def _mg_model(params, seed=0):
  """Model Garden's own model of the task, random weights and BN stats."""
  task_cls = (mg_pretrain.VideoSSLPretrainTask if 'pretrain' in
              type(params.task).__name__.lower() else
              mg_linear_eval.VideoSSLEvalTask)
  model = task_cls(params.task).build_model()
  _randomize_batch_norm(model.backbone.weights, seed)
  return model


def _randomize_batch_norm(weights, seed):
  """Random scales, offsets and moving statistics: inference-mode
  normalisation is then not the identity (and no gamma is zero)."""
  rng = np.random.default_rng(seed)
  for v in weights:
    if v.name.endswith(('gamma:0', 'moving_variance:0')):
      v.assign(rng.uniform(0.5, 1.5, v.shape))
    elif v.name.endswith(('beta:0', 'moving_mean:0')):
      v.assign(rng.normal(0.0, 0.2, v.shape))


def _mg_features(backbone, frames01):
  outputs = backbone(tf.constant(frames01, tf.float32), training=False)
  last = outputs[max(outputs, key=int)]
  return tf_keras.layers.GlobalAveragePooling3D()(last).numpy()


def _clips(shape, seed):
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture(scope='module')
def release(tmp_path_factory):
  """Model Garden's ResNet3D-50 as the release has it, and the file."""
  root = tmp_path_factory.mktemp('release')
  model = _mg_model(_mg_params())
  prefix = tf.train.Checkpoint(backbone=model.backbone).write(
      str(root / RELEASE_PREFIX))
  return model.backbone, prefix, root


def _ours(experiment='cvrl_linear_eval_k600', frames=32, **overrides):
  params = launch.parse_experiment(experiment)
  params.task.validation_data.num_frames = frames
  params.task.model.backbone.cvrl_r3d.override(overrides, is_strict=True)
  return params


def test_release_through_the_saved_model_gives_model_garden_features(
    release, tmp_path):
  """The linear evaluation's view, 32 frames at 224: our SavedModel of the
  restored backbone on uint8 clips equals Model Garden on the same clips /
  255 (the small view: through export_features, below)."""
  mg_backbone, prefix, _ = release
  encoder = saved_model.build_encoder(_ours(frames=32), prefix, size=224)
  out = str(tmp_path / 'saved')
  saved_model.export(encoder, out)
  serve = tf.saved_model.load(out).signatures['serving_default']
  clips = _clips((1, 32, 224, 224, 3), seed=32)
  ours = serve(clips=tf.constant(clips))['features'].numpy()
  theirs = _mg_features(mg_backbone, clips.astype(np.float32) / 255.0)
  assert np.abs(theirs).max() > 1.0  # not a trivial zero feature
  np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4)


def test_release_through_export_features_gives_model_garden_features(
    release, tmp_path):
  """export_features at 32 frames (the linear evaluation's clip length) and
  at 8, each view compared with Model Garden's features of that view."""
  mg_backbone, prefix, _ = release
  videos = [([video_records.textured_frame(72, 96, seed=7 * v + k)
              for k in range(70)], v, f'video_{v}') for v in range(2)]
  pattern = video_records.write_records(str(tmp_path / 'val-0.tfrecord'),
                                        videos)
  for frames in (32, 8):
    params = _ours(frames=frames)
    out = str(tmp_path / f'features_{frames}.npz')
    feature_export.export_features(params, prefix, pattern, out,
                                   view_size=64, progress=False)
    exported = np.load(out)['features']
    config = feature_export.export_data_config(params, pattern, 1, 1, 1, 64)
    source = video_sources.TFRecordSource(pattern, shuffle=False, seed=0,
                                          cycle_length=1)
    for position, example in enumerate(source.stream(repeat=False)):
      view = eval_views.test_views(example, None, config)['image'].numpy()
      assert view.shape == (1, frames, 64, 64, 3)
      reference = mg_backbone
      if frames != 32:  # Model Garden's model has a fixed clip length
        model = _mg_model(_mg_params(frames=frames))
        tf.train.Checkpoint(backbone=model.backbone).read(
            prefix).assert_existing_objects_matched()
        reference = model.backbone
      np.testing.assert_allclose(exported[position],
                                 _mg_features(reference, view)[0],
                                 rtol=0, atol=1e-4)


def test_a_model_garden_training_run_dir_is_read(release, tmp_path):
  """A video_ssl pretraining run's model dir, as Model Garden's trainer
  writes it (global step, model, optimizer with momentum slots, and the
  model's checkpoint_items), with its params.yaml."""
  params = _mg_params('video_ssl_pretrain_kinetics600', frames=8)
  model = _mg_model(params, seed=3)
  optimizer = tf_keras.optimizers.SGD(0.1, momentum=0.9)
  optimizer.apply_gradients((tf.zeros_like(v), v)
                            for v in model.trainable_variables)
  checkpoint = tf.train.Checkpoint(
      global_step=tf.Variable(7, dtype=tf.int64), model=model,
      optimizer=optimizer, **model.checkpoint_items)
  run_dir = str(tmp_path / 'mg_run')
  tf.train.CheckpointManager(checkpoint, run_dir, 3).save()
  train_utils.serialize_config(params, run_dir)
  ours = cvrl_model.build_backbone(_ours(frames=8).task.model,
                                   (8, None, None, 3))
  used = checkpoint_restore.restore_backbone(ours, run_dir)
  assert used.startswith(run_dir) and used.endswith('ckpt-1')
  clips = _clips((2, 8, 48, 48, 3), seed=5) / 255.0
  np.testing.assert_allclose(ours(clips, training=False).numpy(),
                             _mg_features(model.backbone, clips),
                             rtol=0, atol=1e-4)
  # What the weights cannot show, the run's params.yaml does.
  params.task.model.backbone.resnet_3d.block_specs[2].temporal_strides = 2
  train_utils.serialize_config(params, run_dir)  # a local rewrite
  with pytest.raises(checkpoint_restore.RestoreError,
                     match=r'block_specs\[2\]\.temporal_strides=2'):
    checkpoint_restore.restore_backbone(ours, run_dir)


@pytest.mark.parametrize('what,ours,theirs,message', [
    ('another depth', {'depth': 101}, {},
     r'res4_6_a/kernel:0 \(shape \[3, 1, 1, 1024, 256\]\) has no counterpart: '
     r'the checkpoint is R3D-50, blocks 3/4/6/3, this backbone R3D-101'),
    ('another width', {'width_multiplier': 2.0}, {},
     r'stem_conv/kernel:0 has shape \[5, 7, 7, 3, 128\] but '
     r'backbone/layer_with_weights-0/kernel.* has \[5, 7, 7, 3, 64\]'),
    ('other temporal kernels', {'stage_temporal_kernels': [3, 1, 3, 3]}, {},
     r'res2_0_a/kernel:0 has shape \[3, 1, 1, 64, 64\] but .*'
     r'_temporal_conv/kernel.* has \[1, 1, 1, 64, 64\]'),
    ('residual-frame input', {'input_frames': 'difference'}, {},
     r'takes RGB frames; this model has input_frames=.difference.'),
])
def test_what_does_not_match_stops_naming_it(release, what, ours, theirs,
                                             message):
  del what, theirs
  _, prefix, _ = release
  backbone = cvrl_model.build_backbone(_ours(frames=8, **ours).task.model,
                                       (8, None, None, 3))
  with pytest.raises(checkpoint_restore.RestoreError, match=message) as e:
    checkpoint_restore.restore_backbone(backbone, prefix)
  assert '\n' not in str(e.value)


@pytest.mark.parametrize('variant,key', [
    ({'block_specs': [dict(spec, use_self_gating=True) for spec in
                      RELEASE_BACKBONE['block_specs']]}, '_self_gating'),
    ({'se_ratio': 0.25}, '_squeeze_excitation'),
])
def test_self_gating_or_se_checkpoints_are_refused(tmp_path, variant, key):
  model = _mg_model(_mg_params(frames=8, **variant))
  prefix = tf.train.Checkpoint(backbone=model.backbone).write(
      str(tmp_path / 'variant-1'))
  backbone = cvrl_model.build_backbone(_ours(frames=8).task.model,
                                       (8, None, None, 3))
  with pytest.raises(checkpoint_restore.RestoreError,
                     match=rf'holds backbone/.*{key}.*which no variable'):
    checkpoint_restore.restore_backbone(backbone, prefix)


def test_a_2d_checkpoint_is_refused_naming_the_variable(tmp_path):
  from official.vision.modeling.backbones import resnet  # pylint: disable=g-import-not-at-top
  model = resnet.ResNet(model_id=50, input_specs=tf_keras.layers.InputSpec(
      shape=[None, None, None, 3]))
  prefix = tf.train.Checkpoint(backbone=model).write(str(tmp_path / '2d-1'))
  backbone = cvrl_model.build_backbone(_ours(frames=8).task.model,
                                       (8, None, None, 3))
  with pytest.raises(checkpoint_restore.RestoreError,
                     match=r'stem_conv/kernel:0 .*shape'):
    checkpoint_restore.restore_backbone(backbone, prefix)


def test_a_damaged_release_file_is_named(release, tmp_path):
  _, prefix, root = release
  damaged = str(tmp_path / RELEASE_PREFIX)
  for suffix in ('.index', '.data-00000-of-00001'):
    tf.io.gfile.copy(prefix + suffix, damaged + suffix)
  data = damaged + '.data-00000-of-00001'
  with open(data, 'r+b') as f:
    f.truncate(os.path.getsize(data) // 2)
  backbone = cvrl_model.build_backbone(_ours(frames=8).task.model,
                                       (8, None, None, 3))
  with pytest.raises(checkpoint_restore.RestoreError,
                     match=rf'{damaged}: cannot be read'):
    checkpoint_restore.restore_backbone(backbone, damaged)
  del root


def test_an_untarred_release_folder_is_enough(release):
  """The release's tarball holds the prefix's files; the folder is given."""
  _, prefix, root = release
  os.remove(os.path.join(root, 'checkpoint')) if os.path.exists(
      os.path.join(root, 'checkpoint')) else None
  assert checkpoint_restore.resolve_checkpoint(str(root)) == prefix


def test_our_run_is_written_for_model_garden_linear_evaluation(tmp_path):
  """export_model --format=model_garden: Model Garden's video_ssl linear
  evaluation task reads it (every object matched) and computes our
  features."""
  params = _ours(frames=8)
  backbone = cvrl_model.build_backbone(params.task.model, (8, None, None, 3))
  _randomize_batch_norm(backbone.weights, seed=11)
  ours_dir = str(tmp_path / 'ours')
  checkpoint_restore.save_backbone(backbone, os.path.join(ours_dir, 'b'))
  out = str(tmp_path / 'for_model_garden')
  result = run_module('cvrl.tools.export_model',
                      '--experiment=cvrl_linear_eval_k600',
                      f'--checkpoint={ours_dir}', '--format=model_garden',
                      f'--output_dir={out}')
  written = os.path.join(out, 'backbone-1')
  assert written in result.stdout
  mg_params = _mg_params(frames=8)
  mg_params.task.init_checkpoint = out  # a folder, as users give it
  mg_params.task.init_checkpoint_modules = 'backbone'
  task = mg_linear_eval.VideoSSLEvalTask(mg_params.task)
  model = task.build_model()
  task.initialize(model)
  tf.train.Checkpoint(backbone=model.backbone).read(
      written).assert_existing_objects_matched()
  clips = _clips((2, 8, 48, 48, 3), seed=9) / 255.0
  # Features up to ~400 here: float32 rounding is 1e-5 of them.
  np.testing.assert_allclose(_mg_features(model.backbone, clips),
                             backbone(clips, training=False).numpy(),
                             rtol=1e-5, atol=1e-4)
  # Written with the identity blocks' unused shortcut variables too.
  keys = [k for k, _ in tf.train.list_variables(written)]
  assert 'backbone/layer_with_weights-3/_shortcut_conv/kernel/.ATTRIBUTES/' \
         'VARIABLE_VALUE' in keys


def test_the_small_recipe_cannot_be_written_for_model_garden():
  """Model Garden's ResNet3D has no depth 14, no width multiplier and RGB
  input only: said in one line, nothing written."""
  from cvrl.modeling import model_garden_checkpoint  # pylint: disable=g-import-not-at-top
  for overrides, message in (
      ({'depth': 14}, r'4 bottleneck blocks .* built at depths'),
      ({'width_multiplier': 2.0}, r'stem of 128 filters .* width 1'),
      ({'input_frames': 'difference'}, r'takes RGB frames')):
    backbone = cvrl_model.build_backbone(
        _ours(frames=8, **overrides).task.model, (8, None, None, 3))
    with pytest.raises(model_garden_checkpoint.FormatError, match=message):
      model_garden_checkpoint.save(backbone, '/nonexistent/never-1')
