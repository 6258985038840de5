"""Every path a user gives works on gs://: TF's in-memory file system ram://
stands in for it (the same tf.io.gfile API, inside one process).

The source walk refuses local-only file calls in the libraries; the jobs
train and evaluate with the model dir, the records and every annotation
or label-map file on ram://, and the tools read and write ram://.
"""

import ast
import os

import numpy as np
import pytest
import tensorflow as tf

from official.core import exp_factory
from official.modeling.hyperparams import params_dict

from cvrl import files
from cvrl import registry_imports  # pylint: disable=unused-import  # noqa: F401
from cvrl.configs import precision
from cvrl.data import ava_files
from cvrl.eval import ava_map
from cvrl.eval import feature_export
from cvrl.eval import reports
from cvrl.tools import train
from tests.conftest import REPO_ROOT
from tests.test_detection import _small
from tests.test_detection import records  # noqa: F401  pylint: disable=unused-import

CPU = precision.Devices()
LIBRARIES = ('cvrl', 'tfrecords_tools')
# Calls that see only the local disk, by (module, attribute); builtin open.
LOCAL_ONLY = {('os', 'makedirs'), ('os', 'listdir'), ('os', 'walk'),
              ('os', 'remove'), ('os', 'rename'), ('os', 'replace'),
              ('os.path', 'exists'), ('os.path', 'isfile'),
              ('os.path', 'isdir'), ('os.path', 'getmtime'),
              ('os.path', 'getsize'), ('glob', 'glob'), ('np', 'load'),
              ('np', 'save'), ('np', 'savez'), ('np', 'savetxt')}
# Files allowed local calls, each with why.
ALLOWED = {
    'cvrl/files.py': 'np.load / np.savez on an in-memory buffer that the '
                     'helpers move through tf.io.gfile',
    'tfrecords_tools/datasets/synthetic.py': 'generates sample videos with '
        "PyAV, whose muxer writes local files; the demo's data is local",
    'tfrecords_tools/datasets/synthetic_ava.py': 'the same, for the AVA '
        'demo movies',
    'tfrecords_tools/datasets/nuisance.py': 'the same, for the study '
        'datasets',
    'tfrecords_tools/conversion/folder_lock.py': "reads this host's "
        '/proc (boot id, a process start time), never a user path',
}


def _dotted(node):
  if isinstance(node, ast.Name):
    return node.id
  if isinstance(node, ast.Attribute):
    inner = _dotted(node.value)
    return f'{inner}.{node.attr}' if inner else None
  return None


def local_calls(source: str):
  """(line, call) of every local-only file call in `source`."""
  found = []
  for node in ast.walk(ast.parse(source)):
    if not isinstance(node, ast.Call):
      continue
    name = _dotted(node.func)
    if name is None:
      continue
    module, _, attr = name.rpartition('.')
    if (name == 'open' or name.startswith('shutil.')
        or (module, attr) in LOCAL_ONLY):
      found.append((node.lineno, name))
  return found


def test_the_walk_finds_each_kind_of_local_call():
  # The walk itself must see what it is meant to refuse.
  source = ('import os, glob, shutil\nimport numpy as np\n'
            'open("a")\nos.makedirs("b")\nos.path.exists("c")\n'
            'glob.glob("d")\nshutil.copyfile("e", "f")\nnp.load("g")\n'
            'tf.io.gfile.exists("h")\nav.open("i")\n')
  assert [n for _, n in local_calls(source)] == [
      'open', 'os.makedirs', 'os.path.exists', 'glob.glob',
      'shutil.copyfile', 'np.load']


def test_libraries_use_tf_io_gfile_for_user_paths():
  offenders = []
  for package in LIBRARIES:
    for folder, _, names in os.walk(os.path.join(REPO_ROOT, package)):
      for name in names:
        if not name.endswith('.py'):
          continue
        path = os.path.join(folder, name)
        relative = os.path.relpath(path, REPO_ROOT)
        if relative in ALLOWED:
          continue
        with open(path, encoding='utf-8') as f:
          calls = local_calls(f.read())
        offenders.extend(f'{relative}:{line}: {call}' for line, call in calls)
  assert not offenders, ('local-only file calls on paths a user may give '
                         '(use cvrl.files / tf.io.gfile, or allow-list the '
                         'file with a reason):\n' + '\n'.join(offenders))
  for relative in ALLOWED:  # the allow-list stays true
    with open(os.path.join(REPO_ROOT, relative), encoding='utf-8') as f:
      assert local_calls(f.read()), f'{relative} needs no allow-list entry'


def _to_ram(local_root: str, ram_root: str) -> str:
  for folder, _, names in tf.io.gfile.walk(local_root):
    target = folder.replace(local_root, ram_root, 1)
    tf.io.gfile.makedirs(target)
    for name in names:
      tf.io.gfile.copy(os.path.join(folder, name),
                       os.path.join(target, name), overwrite=True)
  return ram_root


TINY = dict(width=0.125, frames=4, size=32)


def _tiny_video_task(params):
  task = params.task
  task.model.backbone.cvrl_r3d.width_multiplier = TINY['width']
  for data in (task.train_data, task.validation_data):
    data.num_frames, data.crop_size = TINY['frames'], TINY['size']
    data.global_batch_size = 4
  params.trainer.train_steps = 2
  params.trainer.steps_per_loop = 1
  params.trainer.summary_interval = 1
  params.trainer.checkpoint_interval = 1
  params.trainer.validation_interval = 2
  params.trainer.validation_steps = 1
  return params


@pytest.fixture(scope='module')
def remote_runs(synthetic_records):
  """Pretraining, then linear evaluation from it, all on ram://."""
  root = 'ram://remote_runs'
  data = _to_ram(synthetic_records, f'{root}/records')
  pretrain = exp_factory.get_exp_config('cvrl_pretrain_demo')
  pretrain.task.image_summary_clips = 0
  pretrain.task.train_data.input_path = f'{data}/train/train-*.tfrecord'
  pretrain.task.validation_data.input_path = f'{data}/val/val-*.tfrecord'
  train.run_experiment(_tiny_video_task(pretrain), 'train_and_eval',
                       f'{root}/pretrain', CPU)
  linear = exp_factory.get_exp_config('cvrl_linear_eval_demo')
  linear.task.init_checkpoint = f'{root}/pretrain'
  linear.task.train_data.input_path = f'{data}/train/train-*.tfrecord'
  linear.task.validation_data.input_path = f'{data}/val/val-*.tfrecord'
  linear = _tiny_video_task(linear)
  linear.task.validation_data.test_short_side = TINY['size']
  linear.task.validation_data.num_test_clips = 1
  train.run_experiment(linear, 'train_and_eval', f'{root}/linear', CPU)
  return root


def test_pretraining_and_linear_evaluation_on_a_remote_model_dir(remote_runs):
  for run in ('pretrain', 'linear'):
    folder = f'{remote_runs}/{run}'
    assert tf.io.gfile.exists(f'{folder}/ckpt-2.index'), run
    assert tf.io.gfile.exists(f'{folder}/params.yaml'), run
    assert tf.io.gfile.glob(f'{folder}/validation/events.*'), run
  # run_summary and eval_report read the remote runs.
  summary = reports.summarize(f'{remote_runs}/pretrain')
  assert 'contrastive_loss' in summary and 'chance loss' in summary
  text = reports.table([('CVRL', f'{remote_runs}/linear')])
  assert 'CVRL' in text and 'top-1' in text


def test_export_features_and_probe_files_on_a_remote_path(remote_runs):
  params = exp_factory.get_exp_config('cvrl_linear_eval_demo')
  params.task.model.backbone.cvrl_r3d.width_multiplier = TINY['width']
  params.task.validation_data.num_frames = TINY['frames']
  output = f'{remote_runs}/features/val.npz'
  summary = feature_export.export_features(
      params, f'{remote_runs}/pretrain',
      f'{remote_runs}/records/val/val-*.tfrecord', output, batch_size=4,
      view_size=TINY['size'])
  arrays = files.load_npz(output)  # what the probe tool reads
  assert arrays['features'].shape[0] == summary['videos'] > 0
  assert len(arrays['ids']) == len(arrays['labels']) == summary['videos']
  assert not tf.io.gfile.glob(f'{remote_runs}/features/*.tmp*')


def _detection(records_root, steps, validation_interval, **task_fields):
  """The AVA demo's detector at test size, trained for `steps` with an
  evaluation every `validation_interval` steps and no interval
  checkpoint, on the records under `records_root`."""
  notes = f'{records_root}/annotations'
  params = _small(exp_factory.get_exp_config('cvrl_ava_demo'),
                  init_checkpoint='', random_backbone=True,
                  evaluated_label_map=(f'{notes}/ava_action_list_v2.2_for_'
                                       'activitynet_2019.pbtxt'),
                  label_map=f'{notes}/ava_action_list_v2.2.pbtxt',
                  groundtruth_csv=f'{notes}/ava_val_v2.2.csv',
                  excluded_timestamps='')
  task = params.task.replace(**task_fields)
  task.train_data.input_path = f'{records_root}/train/train-*.tfrecord'
  task.validation_data.input_path = f'{records_root}/val/val-*.tfrecord'
  params = params.replace(task=task)
  trainer = params.trainer
  trainer.train_steps, trainer.steps_per_loop = steps, 1
  trainer.summary_interval = 1
  trainer.checkpoint_epochs = trainer.validation_epochs = 0
  trainer.checkpoint_interval = 100
  trainer.validation_interval = validation_interval
  return params


def test_detection_with_remote_annotations_and_model_dir(records):  # noqa: F811
  root = _to_ram(records, 'ram://remote_ava')
  params = _detection(root, steps=2, validation_interval=2)
  task = params.task
  model_dir = f'{root}/run'
  _, logs = train.run_experiment(params, 'train_and_eval', model_dir, CPU)
  assert tf.io.gfile.exists(f'{model_dir}/ckpt-2.index')
  table = f'{model_dir}/ava_ap_step_2.csv'
  detections = f'{model_dir}/ava_detections_step_2.csv'
  with files.open_file(table) as f:
    assert f.readline().startswith('class_id')
  # ava_eval's reading, on the remote files, gives the job's mAP.
  names = ava_files.read_label_map(task.evaluated_label_map)
  gt, problems = ava_files.read_boxes(f'{root}/annotations/ava_val_v2.2.csv')
  dets, bad = ava_files.read_boxes(detections, proposals=True)
  assert not problems and not bad and dets
  result = ava_map.evaluate(
      [(ava_files.keyframe_key(*r.keyframe), r.box, r.action_id) for r in gt],
      [(ava_files.keyframe_key(*r.keyframe), r.box, r.action_id, r.score)
       for r in dets], sorted(names))
  mean = reports.detection_table([('run', model_dir)])
  assert 'run' in mean
  assert np.isfinite(result.mean_ap)
  del logs


def test_an_evaluation_that_fails_keeps_the_trained_checkpoint(records,  # noqa: F811
                                                               tmp_path):
  # The label map is read only by the evaluation, after training: the
  # crash a user saw. 3 steps, one evaluation at the end, no interval
  # checkpoint: only the checkpoint before the evaluation can hold step 3.
  params = _detection(records, steps=3, validation_interval=100,
                      evaluated_label_map=str(tmp_path / 'missing.pbtxt'),
                      label_map='')
  model_dir = str(tmp_path / 'run')
  with pytest.raises(train.train_actions.EvaluationError) as error:
    train.run_experiment(params, 'train_and_eval', model_dir, CPU)
  assert 'evaluation at step 3 failed' in str(error.value)
  assert 'missing.pbtxt' in str(error.value)
  assert 'ckpt-3' in str(error.value)
  assert os.path.exists(os.path.join(model_dir, 'ckpt-3.index'))


def _read(path):
  with files.open_file(path) as f:
    return f.read()


def _shard_bytes(folder):
  out = {}
  for path in sorted(tf.io.gfile.glob(f'{folder}/*.tfrecord')):
    with files.open_file(path, 'rb') as f:
      out[os.path.basename(path)] = f.read()
  return out


def _records_without_source_path(folder):
  """{shard: [record]} with the source-path key cleared (it names where the
  video was read from, which is what differs)."""
  from cvrl.data import features  # pylint: disable=g-import-not-at-top
  out = {}
  for path in sorted(tf.io.gfile.glob(f'{folder}/*.tfrecord')):
    records = []
    for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
      example = tf.train.SequenceExample.FromString(raw)
      del example.context.feature[features.FILENAME_KEY]
      records.append(example.SerializeToString(deterministic=True))
    out[os.path.basename(path)] = records
  return out


@pytest.mark.timeout(300)
def test_conversion_reads_and_writes_a_remote_bucket(synthetic_videos,
                                                     tmp_path):
  # Videos, CSV and label map on ram://; PyAV reads the videos through
  # tf.io.gfile. The output is compared with a local conversion.
  # TensorFlow's ram:// lives in one process's memory, so the ram:// legs
  # convert in this process (--workers=1). The spawned workers' remote
  # reads are covered by a leg whose videos are file:// URLs: the same
  # tf.io.gfile path, visible to other processes as gs:// is.
  from tfrecords_tools.conversion import job  # pylint: disable=g-import-not-at-top
  from tfrecords_tools.conversion import sources  # pylint: disable=g-import-not-at-top
  from tfrecords_tools.conversion import video_frames  # pylint: disable=g-import-not-at-top
  remote = _to_ram(synthetic_videos, 'ram://bucket/videos')
  options = video_frames.ConversionOptions(short_side=0)
  labels = sources.read_label_map(f'{remote}/label_map.txt')

  def convert(video_root, output_dir, workers=1):
    tasks = job.read_tasks(f'{video_root}/val.csv', video_root, 'val')
    return job.convert(tasks, output_dir, labels, options, 2,
                       workers=workers)

  local = convert(synthetic_videos, str(tmp_path / 'local'), workers=2)
  url = convert(f'file://{synthetic_videos}', str(tmp_path / 'url'),
                workers=2)
  assert [r['path'] for r in url['rows']] == [
      f'file://{r["path"]}' for r in local['rows']]
  assert url['counts'] == local['counts']
  assert _records_without_source_path(str(tmp_path / 'url')) == (
      _records_without_source_path(str(tmp_path / 'local')))
  with pytest.raises(job.UsageError, match='ram://.*--workers=1'):
    convert(remote, str(tmp_path / 'refused'), workers=2)
  result = convert(remote, 'ram://bucket/records')
  assert result['counts'] == local['counts'] and local['counts']['ok'] > 0
  assert _records_without_source_path('ram://bucket/records') == (
      _records_without_source_path(str(tmp_path / 'local')))
  written = _shard_bytes('ram://bucket/records')
  assert written
  # A rerun resumes: nothing converted again, the same bytes; the files it
  # writes again (manifest, label map) hold one copy, as on gs://.
  manifest = _read('ram://bucket/records/manifest.jsonl')
  rerun = convert(remote, 'ram://bucket/records')
  assert rerun['counts'] == result['counts']
  assert _shard_bytes('ram://bucket/records') == written
  assert _read('ram://bucket/records/manifest.jsonl') == manifest
  assert _read('ram://bucket/records/label_map.txt') == ''.join(
      f'{name}\n' for name in labels)


def test_the_ram_helper_replaces_a_rewritten_file_as_gs_does():
  """conftest.ram_rewrites_replace: without it ram:// appends."""
  path = 'ram://rewrite/file.txt'
  for text in ('first\n', 'second\n'):
    with tf.io.gfile.GFile(path, 'w') as f:
      f.write(text)
  assert _read(path) == 'second\n'
  tf.io.gfile.copy(path, 'ram://rewrite/copy.txt', overwrite=True)
  tf.io.gfile.copy(path, 'ram://rewrite/copy.txt', overwrite=True)
  assert _read('ram://rewrite/copy.txt') == 'second\n'


def test_a_resumed_run_rewrites_its_remote_params_yaml(remote_runs):
  """The same pretraining run again with one more step, on ram://: it
  resumes at step 2 and params.yaml says what this run used."""
  pretrain = exp_factory.get_exp_config('cvrl_pretrain_demo')
  pretrain.task.image_summary_clips = 0
  data = f'{remote_runs}/records'
  pretrain.task.train_data.input_path = f'{data}/train/train-*.tfrecord'
  pretrain.task.validation_data.input_path = f'{data}/val/val-*.tfrecord'
  params = _tiny_video_task(pretrain)
  params.trainer.train_steps = 3
  train.run_experiment(params, 'train', f'{remote_runs}/pretrain', CPU)
  assert tf.io.gfile.exists(f'{remote_runs}/pretrain/ckpt-3.index')
  written = params_dict.read_yaml_to_params_dict(
      f'{remote_runs}/pretrain/params.yaml').as_dict()
  assert written['trainer']['train_steps'] == 3
  assert written['task']['train_data']['start_step'] == 2
  assert _read(f'{remote_runs}/pretrain/params.yaml').count(
      'trainer:') == 1
