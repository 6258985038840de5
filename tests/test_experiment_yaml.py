"""Every YAML in experiments/ applies, with strict overrides, to our configs."""

import glob
import os

import pytest
import yaml

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
  assert 'python -m cvrl.train' in text  # its launch command is in a comment
  override = yaml.safe_load(text)['task']['train_data']
  config = video_data.VideoDataConfig(input_path='x', global_batch_size=8)
  config.override(override, is_strict=True)
  config.validate()
  assert config.as_dict() != video_data.VideoDataConfig(
      input_path='x', global_batch_size=8).as_dict()
