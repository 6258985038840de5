"""export_features: the backbone's features of the test views, with labels
and ids, restored from a checked checkpoint."""

import numpy as np
import pytest
import tensorflow as tf

from official.core import exp_factory

from cvrl.eval import feature_export
from cvrl import registry_imports  # noqa: F401  pylint: disable=unused-import
from cvrl.data import eval_views
from cvrl.data import pipelines
from cvrl.data import video_sources
from cvrl.modeling import checkpoint_restore
from cvrl.modeling import cvrl_model
from tests import video_records
from tests.conftest import run_module

FRAMES = 4


def _params(width=0.125):
  params = exp_factory.get_exp_config('cvrl_linear_eval_demo')
  params.task.model.backbone.cvrl_r3d.width_multiplier = width
  val = params.task.validation_data
  val.num_frames, val.frame_stride = FRAMES, 2
  return params


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
  root = tmp_path_factory.mktemp('export')
  videos = [([video_records.textured_frame(32, 48, seed=10 * v + k)
              for k in range(12)], v % 3, f'video_{v}') for v in range(5)]
  pattern = video_records.write_records(str(root / 'val-0.tfrecord'), videos)
  params = _params()
  backbone = cvrl_model.build_backbone(params.task.model,
                                       (FRAMES, None, None, 3))
  checkpoint = checkpoint_restore.save_backbone(backbone,
                                                str(root / 'ckpt' / 'b'))
  return params, backbone, checkpoint, pattern, root


def test_features_labels_and_ids_of_every_video(exported):
  params, backbone, checkpoint, pattern, root = exported
  out = str(root / 'centre.npz')
  summary = feature_export.export_features(params, checkpoint, pattern, out,
                                           batch_size=2)
  data = np.load(out)
  assert summary['videos'] == 5 and data['features'].shape == (5, 256)
  assert data['labels'].tolist() == [0, 1, 2, 0, 1]
  assert data['ids'].tolist() == [f'video_{v}' for v in range(5)]
  # Hand computation: the centre clip's centre crop through the backbone.
  config = feature_export.export_data_config(params, pattern, 1, 1, 1)
  for position, example in enumerate(
      video_sources.TFRecordSource(pattern, shuffle=False, seed=0,
                                   cycle_length=1).stream(repeat=False)):
    view = eval_views.test_views(example, None, config)['image']
    want = backbone(view, training=False).numpy()[0]
    np.testing.assert_allclose(data['features'][position], want, rtol=1e-4,
                               atol=1e-5)


def test_views_are_averaged_only_when_asked(exported):
  params, _, checkpoint, pattern, root = exported
  per_view, averaged = str(root / 'views.npz'), str(root / 'mean.npz')
  feature_export.export_features(params, checkpoint, pattern, per_view,
                                 num_clips=2, num_crops=3,
                                 average_views=False)
  feature_export.export_features(params, checkpoint, pattern, averaged,
                                 num_clips=2, num_crops=3)
  views = np.load(per_view)['features']
  assert views.shape == (5, 6, 256)
  assert np.abs(views[:, 0] - views[:, 5]).max() > 1e-4  # views differ
  np.testing.assert_allclose(np.load(averaged)['features'], views.mean(1),
                             rtol=1e-5, atol=1e-6)


def test_a_checkpoint_of_another_backbone_is_refused(exported):
  _, _, checkpoint, pattern, root = exported
  with pytest.raises(checkpoint_restore.RestoreError,
                     match='stem_conv/kernel:0 has shape'):
    feature_export.export_features(_params(width=0.25), checkpoint, pattern,
                                   str(root / 'never.npz'))
  assert not tf.io.gfile.exists(str(root / 'never.npz'))


def test_export_features_command(exported):
  _, _, checkpoint, pattern, root = exported
  out = str(root / 'cli.npz')
  result = run_module(
      'cvrl.tools.export_features', '--experiment=cvrl_linear_eval_demo',
      '--params_override=task.model.backbone.cvrl_r3d.width_multiplier=0.125,'
      f'task.validation_data.num_frames={FRAMES}',
      f'--checkpoint={checkpoint}', f'--input_path={pattern}', f'--output_file={out}')
  assert '5 videos' in result.stdout and f'views of {FRAMES} x 32 x 32' in (
      result.stdout)
  assert np.load(out)['features'].shape == (5, 256)
  bad = run_module('cvrl.tools.export_features', '--experiment=cvrl_linear_eval_demo',
                   f'--checkpoint={checkpoint}', f'--input_path={pattern}',
                   f'--output_file={out}', check=False)  # width 0.25 by default
  assert bad.returncode == 1 and 'stem_conv/kernel:0' in bad.stderr


def test_export_command_with_splits_is_each_split_exported_alone(exported):
  """--splits: one backbone for every split; each .npz equals that split
  exported on its own, and the projector shows --projector_split."""
  params, _, checkpoint, pattern, root = exported
  train_videos = [([video_records.textured_frame(32, 48, seed=500 + 10 * v + k)
                    for k in range(12)], v % 2, f'train_{v}') for v in range(3)]
  video_records.write_records(str(root / 'train-0.tfrecord'), train_videos)
  alone = {}
  for split, split_pattern in (('train', str(root / 'train-0.tfrecord')),
                               ('val', pattern)):
    out = str(root / f'alone_{split}.npz')
    feature_export.export_features(params, checkpoint, split_pattern, out,
                                   progress=False)
    alone[split] = np.load(out)
  projector_dir = root / 'projector_splits'
  result = run_module(
      'cvrl.tools.export_features', '--experiment=cvrl_linear_eval_demo',
      '--params_override=task.model.backbone.cvrl_r3d.width_multiplier=0.125,'
      f'task.validation_data.num_frames={FRAMES}',
      f'--checkpoint={checkpoint}', '--splits=train,val',
      f'--input_path={root}/{{split}}-0.tfrecord',
      f'--output_file={root}/splits_{{split}}.npz',
      f'--projector_dir={projector_dir}', '--projector_split=train')
  assert '3 videos' in result.stdout and '5 videos' in result.stdout
  for split in ('train', 'val'):
    got = np.load(root / f'splits_{split}.npz')
    assert got['ids'].tolist() == alone[split]['ids'].tolist()
    np.testing.assert_allclose(got['features'], alone[split]['features'],
                               rtol=1e-5, atol=1e-6)
  metadata = (projector_dir / 'metadata.tsv').read_text().splitlines()
  assert [line.split('\t')[1] for line in metadata[1:]] == [
      f'train_{v}' for v in range(3)]
  bad = run_module('cvrl.tools.export_features',
                   '--experiment=cvrl_linear_eval_demo',
                   f'--checkpoint={checkpoint}', '--splits=train,val',
                   f'--input_path={pattern}',
                   f'--output_file={root}/never_{{split}}.npz', check=False)
  assert bad.returncode != 0
  assert '--input_path must contain {split}' in bad.stderr + bad.stdout


def test_views_at_the_experiments_own_evaluation_size(exported):
  """A pretraining experiment's views are its crop size (the demo: 32), not
  the paper's test short side 256; an evaluation experiment's are its test
  short side; view_size overrides both."""
  _, _, checkpoint, pattern, root = exported
  pretrain = exp_factory.get_exp_config('cvrl_pretrain_demo')
  pretrain.task.model.backbone.cvrl_r3d.width_multiplier = 0.125
  pretrain.task.validation_data.num_frames = FRAMES
  assert pretrain.task.validation_data.test_short_side == 256
  config = feature_export.export_data_config(pretrain, pattern, 1, 1, 2)
  assert (config.test_short_side, config.crop_size) == (32, 32)
  paper = exp_factory.get_exp_config('cvrl_pretrain_k400')
  assert feature_export.evaluation_view_size(paper) == 224
  linear = exp_factory.get_exp_config('cvrl_linear_eval_k400')
  assert feature_export.evaluation_view_size(linear) == 256
  summary = feature_export.export_features(
      pretrain, checkpoint, pattern, str(root / 'pre.npz'), batch_size=2)
  assert summary['view_size'] == 32
  wide = feature_export.export_data_config(pretrain, pattern, 1, 1, 2,
                                           view_size=48)
  batch = next(iter(pipelines.build_dataset(wide)))
  assert batch['image'].shape[-4:] == (FRAMES, 48, 48, 3)


def test_random_init_is_the_seeded_initialisation(exported):
  """--checkpoint=random_init: no checkpoint read; the same init_seed gives
  the same features, another seed other features, and neither is a trained
  checkpoint's."""
  params, _, checkpoint, pattern, root = exported
  outputs = {}
  for name, seed in (('a', 0), ('b', 0), ('c', 1)):
    params.task.init_seed = seed
    summary = feature_export.export_features(
        params, feature_export.RANDOM_INIT, pattern, str(root / f'{name}.npz'))
    assert summary['checkpoint'] == f'random_init (init_seed {seed})'
    outputs[name] = np.load(root / f'{name}.npz')['features']
  params.task.init_seed = 0
  np.testing.assert_array_equal(outputs['a'], outputs['b'])
  assert np.abs(outputs['a'] - outputs['c']).max() > 1e-4
  restored = str(root / 'restored.npz')
  feature_export.export_features(params, checkpoint, pattern, restored)
  assert np.abs(np.load(restored)['features'] - outputs['a']).max() > 1e-4
