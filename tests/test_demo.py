"""The README's main command, shortened (CVRL_DEMO_QUICK=1), end to end:
synthetic videos -> converter -> CVRL pretraining -> linear evaluation of
the pretrained and of a random encoder -> the comparison table."""

import os
import re
import subprocess

import pytest

from cvrl.eval import reports
from tests.conftest import REPO_ROOT
from tests.conftest import pretrained_checkpoint

pytestmark = pytest.mark.slow


def test_demo_runs_end_to_end(tmp_path):
  out = str(tmp_path / 'demo')
  env = dict(os.environ, CVRL_DEMO_QUICK='1', TF_CPP_MIN_LOG_LEVEL='2')
  result = subprocess.run(['bash', 'scripts/demo.sh', out], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True,
                          timeout=1200, check=False)
  assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
  text = result.stdout
  for stage in range(1, 8):
    assert f'== {stage}/7' in text
  # The table: both encoders' top-1, then the margin of CVRL over random.
  assert re.search(r'^CVRL\s+\d+\.\d\d\s+\d+\.\d\d\s+6$', text, re.M), text
  assert re.search(r'^random\s+\d+\.\d\d\s+\d+\.\d\d\s+6$', text, re.M), text
  assert re.search(r'CVRL - random: [+-]\d+\.\d\d points top-1', text)
  assert 'pretraining:' in text and 'TensorBoard' in text
  # Retrieval of both encoders, and the projector files of the CVRL one.
  assert re.search(r'^CVRL\s+R@1\s+\d+\.\d\d\s+R@5\s+\d+\.\d\d$', text, re.M)
  assert re.search(r'^random\s+R@1\s+\d+\.\d\d\s+R@5\s+\d+\.\d\d$', text,
                   re.M)
  for name in ('CVRL', 'random'):
    assert re.search(rf'^{name}\s+linear probe \(8 classes, chance 12.50\): '
                     r'test top-1 \d+\.\d\d', text, re.M), text
  assert os.path.exists(os.path.join(out, 'projector',
                                     'projector_config.pbtxt'))
  # Both splits came from one export per encoder; the projector shows the
  # validation videos (--projector_split=val), one row each.
  with open(os.path.join(out, 'tfrecords', 'val', 'manifest.jsonl')) as f:
    val_videos = sum(1 for line in f if line.strip())
  with open(os.path.join(out, 'projector', 'metadata.tsv')) as f:
    assert len(f.read().splitlines()) == 1 + val_videos
  for name in ('cvrl', 'random'):
    for split in ('train', 'val'):
      assert os.path.getsize(os.path.join(out, 'features',
                                          f'{name}_{split}.npz')) > 0
  # Pretraining evaluated with the kNN monitor; the linear evaluations
  # restored the pretrained backbone (checked), the baseline did not.
  validation = reports.read_scalars(os.path.join(out, 'pretrain',
                                                     'validation'))
  assert 'knn_top1_accuracy' in validation
  with open(os.path.join(out, 'linear_cvrl.log')) as f:
    assert 'restored the backbone from' in f.read()
  with open(os.path.join(out, 'linear_random.log')) as f:
    assert 'random_backbone: the backbone keeps its random weights' in f.read()


def test_detection_demo_runs_end_to_end(tmp_path):
  """scripts/demo_detection.sh, shortened, on a CVRL checkpoint of the
  demo's model: synthetic AVA -> convert_ava -> inspect -> fine-tune from
  the checkpoint and from random weights -> the mAP table."""
  out = str(tmp_path / 'demo')
  pretrained_checkpoint(os.path.join(out, 'pretrain'), 0.25, (8, 32, 32, 3))
  env = dict(os.environ, CVRL_DEMO_QUICK='1', TF_CPP_MIN_LOG_LEVEL='2')
  result = subprocess.run(['bash', 'scripts/demo_detection.sh', out],
                          cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=1200, check=False)
  assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
  text = result.stdout
  assert '== 0/5' not in text  # the checkpoint was there
  for stage in range(1, 6):
    assert f'== {stage}/5' in text
  assert re.search(r'^CVRL\s+\d+\.\d\d(\s+\d+\.\d\d){4}\s+6$', text, re.M), text
  assert re.search(r'^random\s+\d+\.\d\d(\s+\d+\.\d\d){4}\s+6$', text, re.M)
  assert re.search(r'CVRL - random: [+-]\d+\.\d\d points mAP', text)
  assert os.path.getsize(os.path.join(out, 'ava', 'keyframe.png')) > 0
  logs = {}
  for name in ('cvrl', 'random'):
    with open(os.path.join(out, f'ava_{name}.log')) as f:
      logs[name] = f.read()
    # Both runs fine-tune from res3: stem and res2 frozen.
    assert 'fine_tune_from=res3' in logs[name], name
  assert 'restored the backbone from' in logs['cvrl']
  assert ('random_backbone: the backbone keeps its random weights'
          in logs['random'])
