"""Every YAML in experiments/ applies, with strict overrides, to our configs."""

import glob
import os
import re

import pytest
import yaml

from official.core import exp_factory

from cvrl import registry_imports  # pylint: disable=unused-import  # noqa: F401
from cvrl.configs import launch
from cvrl.configs import precision
from cvrl.configs import video_data
from tests.conftest import REPO_ROOT

ABLATIONS = sorted(glob.glob(os.path.join(REPO_ROOT, 'experiments',
                                          'ablations', '*.yaml')))


def test_there_are_ablation_files():
  names = {os.path.basename(p) for p in ABLATIONS}
  assert {'released_code_views.yaml', 'no_temporal_augmentation.yaml',
          'no_spatial_augmentation.yaml', 'per_frame_augmentation.yaml',
          'gap_uniform.yaml'} <= names


@pytest.mark.parametrize('path', ABLATIONS, ids=os.path.basename)
def test_ablation_overrides_the_train_data_config(path):
  with open(path) as f:
    text = f.read()
  assert 'python -m cvrl.tools.train' in text  # its launch command is in a comment
  override = yaml.safe_load(text)['task']['train_data']
  config = video_data.VideoDataConfig(input_path='x', global_batch_size=8)
  config.override(override, is_strict=True)
  config.validate()
  assert config.as_dict() != video_data.VideoDataConfig(
      input_path='x', global_batch_size=8).as_dict()


PAPER_RUNS = sorted(glob.glob(os.path.join(REPO_ROOT, 'experiments',
                                           'pretrain_*.yaml')))


def test_the_papers_runs_are_all_there():
  names = {os.path.basename(p)[:-5] for p in PAPER_RUNS}
  assert {'pretrain_k400_r3d50_800ep', 'pretrain_k400_r3d50_200ep',
          'pretrain_k400_r3d101_800ep', 'pretrain_k600_r3d50_800ep',
          'pretrain_k600_r3d50_200ep', 'pretrain_k600_r3d152x2_800ep'} <= names


@pytest.mark.parametrize('path', PAPER_RUNS, ids=os.path.basename)
def test_paper_run_applies_to_its_experiment(path):
  with open(path) as f:
    text = f.read()
  experiment = re.search(r'--experiment=(\w+)', text).group(1)
  assert f'--config_file=experiments/{os.path.basename(path)}' in text
  config = exp_factory.get_exp_config(experiment)
  config.override(yaml.safe_load(text), is_strict=True)
  config.validate()
  config.task.validate()
  name = os.path.basename(path)
  backbone = config.task.model.backbone.cvrl_r3d
  depth = int(re.search(r'r3d(\d+)', name).group(1))
  assert backbone.depth == depth
  assert backbone.width_multiplier == (2.0 if 'x2' in name else 1.0)
  epochs = int(re.search(r'(\d+)ep', name).group(1))
  assert config.trainer.epochs == epochs
  launch.prepare(config, precision.Devices(tpu=True))
  assert config.trainer.train_steps == round(
      epochs * config.task.train_data.num_examples / 1024)
  assert '--fps=25' in text  # the paper's Kinetics frame rate


EVAL_RUNS = sorted(p for p in glob.glob(os.path.join(REPO_ROOT, 'experiments',
                                                     '*.yaml'))
                   if not os.path.basename(p).startswith('pretrain_'))


def test_every_protocol_has_its_yaml():
  names = {os.path.basename(p)[:-5] for p in EVAL_RUNS}
  assert {'linear_eval_k400', 'linear_eval_k600', 'semi_supervised_k400_1pct',
          'semi_supervised_k400_10pct', 'supervised_k400', 'supervised_k600',
          'imagenet_inflated_linear_eval_k400'} <= names
  for dataset in ('ucf101', 'hmdb51'):
    assert {f'{dataset}_split{n}' for n in (1, 2, 3)} <= names


@pytest.mark.parametrize('path', EVAL_RUNS, ids=os.path.basename)
def test_eval_yaml_applies_to_every_experiment_it_launches(path):
  with open(path) as f:
    text = f.read()
  experiments = re.findall(r'--experiment=(\w+)', text)
  assert experiments, f'{path}: no launch command in its comment'
  assert f'--config_file=experiments/{os.path.basename(path)}' in text
  for experiment in experiments:
    config = exp_factory.get_exp_config(experiment)
    config.override(yaml.safe_load(text), is_strict=True)
    config.validate()
    config.task.validate()
    split = re.search(r'split(\d)', os.path.basename(path))
    if split:  # UCF / HMDB: the split's own records and size
      assert f'split{split.group(1)}/test-' in (
          config.task.validation_data.input_path)
      launch.prepare(config, precision.Devices(tpu=True))
      assert config.trainer.train_steps == round(
          50 * config.task.train_data.num_examples / 128)
