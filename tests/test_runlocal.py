"""experiments/runlocal.yaml: every registered experiment as a local smoke test.

Default suite: each experiment with runlocal (and the small model) builds,
takes one train step and one validation step on real records, in process.
Slow: the paper's R3D-50 pretraining and linear-evaluation recipes with
runlocal, through `python -m cvrl.tools.train`, on real videos converted at 25 fps.
"""

import os

import numpy as np
import pytest
import yaml

from official.core import exp_factory
from official.core import task_factory
from official.modeling.hyperparams import params_dict

from cvrl import registry_imports  # pylint: disable=unused-import  # noqa: F401
from cvrl.configs import classification as classification_cfg
from cvrl.configs import launch
from cvrl.configs import precision
from cvrl.modeling import checkpoint_restore
from cvrl.modeling import cvrl_model
from tests.conftest import REPO_ROOT
from tests.conftest import real_video
from tests.conftest import run_module

RUNLOCAL = os.path.join(REPO_ROOT, 'experiments', 'runlocal.yaml')
# Detection experiments have their own runlocal (tests/test_detection.py).
EXPERIMENTS = sorted(n for n in exp_factory._REGISTERED_CONFIGS  # pylint: disable=protected-access
                     if n.startswith('cvrl_') and not n.startswith('cvrl_ava'))
SMALL = ('task.model.backbone.cvrl_r3d.depth=14,'
         'task.model.backbone.cvrl_r3d.width_multiplier=0.125')


def test_runlocal_changes_only_size_steps_and_intervals():
  with open(RUNLOCAL) as f:
    text = f.read()
  override = yaml.safe_load(text)
  assert 'python -m cvrl.tools.train' in text
  assert set(override) == {'runtime', 'task', 'trainer'}
  assert set(override['task']) == {'train_data', 'validation_data'}
  allowed = {'global_batch_size', 'crop_size', 'shuffle_buffer_size',
             'cycle_length', 'test_short_side', 'num_test_clips',
             'num_test_crops'}
  for data in override['task'].values():
    assert set(data) <= allowed, set(data) - allowed  # no architecture, paths
  assert override['runtime'] == {'mixed_precision_dtype': 'auto'}


@pytest.fixture(scope='module')
def small_backbone_checkpoint(tmp_path_factory):
  params = exp_factory.get_exp_config('cvrl_linear_eval_k400')
  params.override(dict(task=dict(model=dict(backbone=dict(cvrl_r3d=dict(
      depth=14, width_multiplier=0.125))))), is_strict=True)
  backbone = cvrl_model.build_backbone(params.task.model, (32, None, None, 3))
  return checkpoint_restore.save_backbone(
      backbone, str(tmp_path_factory.mktemp('ckpt') / 'backbone'))


@pytest.mark.parametrize('name', EXPERIMENTS)
def test_every_experiment_runs_a_train_and_a_validation_step(
    name, synthetic_records, small_backbone_checkpoint):
  paths = (f'task.train_data.input_path={synthetic_records}/train/*.tfrecord,'
           f'task.validation_data.input_path={synthetic_records}/val/'
           '*.tfrecord')
  params = launch.parse_experiment(name, [RUNLOCAL], f'{paths},{SMALL}')
  if isinstance(params.task, classification_cfg.ClassificationTaskConfig):
    if not params.task.random_backbone:
      params.task.init_checkpoint = small_backbone_checkpoint
  launch.prepare(params, precision.Devices())
  params.validate()
  assert params.trainer.train_steps == 2
  assert params.runtime.mixed_precision_dtype == 'float32'  # CPU
  task = task_factory.get_task(params.task)
  model = task.build_model()
  task.initialize(model)
  optimizer = task.create_optimizer(params.trainer.optimizer_config,
                                    params.runtime)
  train = next(iter(task.build_inputs(params.task.train_data)))
  before = [v.numpy().copy() for v in model.trainable_variables]
  logs = task.train_step(train, model, optimizer, task.build_metrics())
  assert np.isfinite(float(logs['loss']))
  assert any(np.abs(v.numpy() - b).max() > 0
             for v, b in zip(model.trainable_variables, before))
  validation = next(iter(task.build_inputs(params.task.validation_data)))
  logs = task.validation_step(validation, model,
                              task.build_metrics(training=False))
  assert np.isfinite(float(logs['loss']))


@pytest.fixture(scope='module')
def kinetics_like_records(tmp_path_factory):
  """Four real videos (two Kinetics clips), converted at the paper's 25 fps."""
  root = tmp_path_factory.mktemp('k25')
  listing = root / 'list.csv'
  names = ['kinetics_arm_wrestling.mp4', 'kinetics_flipping_pancake.mkv',
           'mmaction2_test.mp4', 'mmaction2_test.avi']
  listing.write_text('path,label\n' + ''.join(
      f'{n},{"arm_wrestling" if i % 2 == 0 else "flipping_pancake"}\n'
      for i, n in enumerate(names)))
  video_root = os.path.dirname(real_video(names[0]))
  for split in ('train', 'val'):
    run_module('tfrecords_tools.convert_videos', f'--input_csv={listing}',
               f'--video_root={video_root}', f'--split={split}',
               f'--output_dir={root}/tfr', '--fps=25', '--num_shards=2')
  return f'{root}/tfr'


@pytest.mark.slow
def test_r3d50_recipes_with_runlocal_end_to_end(kinetics_like_records,
                                                tmp_path):
  paths = (f'task.train_data.input_path={kinetics_like_records}/train-*,'
           f'task.validation_data.input_path={kinetics_like_records}/val-*')
  pretrain_dir = str(tmp_path / 'pretrain')
  command = ['cvrl.tools.train', '--experiment=cvrl_pretrain_k400_200ep',
             '--mode=train_and_eval', f'--model_dir={pretrain_dir}',
             '--config_file=experiments/pretrain_k400_r3d50_200ep.yaml',
             f'--config_file={RUNLOCAL}']
  # The recipe's K400 size (235,520) against 4 records: runlocal's steps
  # are explicit, so the count replaces it and the smoke test runs.
  result = run_module(*command, f'--params_override={paths}')
  assert ('task.train_data.num_examples=4 counted (the recipe says 235520)'
          in result.stderr)
  assert 'strategy: one_device on /cpu:0' in result.stderr
  assert 'precision: float32 on cpu' in result.stderr
  assert 'schedule: 2 train steps' in result.stderr
  params = params_dict.read_yaml_to_params_dict(
      os.path.join(pretrain_dir, 'params.yaml')).as_dict()
  assert params['task']['model']['backbone']['cvrl_r3d']['depth'] == 50
  assert params['runtime']['mixed_precision_dtype'] == 'float32'
  assert params['trainer']['train_steps'] == 2  # what the run used
  assert os.path.exists(os.path.join(pretrain_dir, 'ckpt-2.index'))
  # The released encoders' format: this run written as Model Garden's
  # ResNet3D checkpoint, then the released encoders' linear evaluation on
  # it (docs/released_encoders.md's smoke test).
  released = tmp_path / 'as_released'
  run_module('cvrl.tools.export_model', '--experiment=cvrl_linear_eval_released',
             f'--checkpoint={pretrain_dir}', '--format=model_garden',
             f'--output_dir={released}')
  result = run_module(
      'cvrl.tools.train', '--experiment=cvrl_linear_eval_released',
      '--mode=train_and_eval', f'--model_dir={tmp_path / "linear"}',
      f'--config_file={RUNLOCAL}',
      f'--params_override={paths},task.init_checkpoint={released}')
  assert f'restored the backbone from {released}/backbone-1' in result.stderr
  assert 'head.num_classes=2 (classes in' in result.stderr
  assert 'top_1_accuracy' in result.stdout + result.stderr
