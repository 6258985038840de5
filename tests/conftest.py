"""Shared fixtures: the real test videos in ../shared and small synthetic data."""

import os
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTDATA_VIDEOS = os.environ.get(
    'CVRL_TESTDATA_VIDEOS',
    os.path.join(os.path.dirname(REPO_ROOT), 'shared', 'testdata', 'videos'))

# Expected facts about the real files (see ../shared/testdata/videos/SOURCES.md).
REAL_VIDEOS = {
    'kinetics_arm_wrestling.mp4': dict(status='ok', frames=280),
    'mmaction2_test.mp4': dict(status='ok', frames=300),
    'mmaction2_test.avi': dict(status='ok', frames=164),
    'kinetics_flipping_pancake.mkv': dict(status='ok', frames=310),
    'rotated_90.mov': dict(status='ok', frames=3),
    'unordered_pts.mov': dict(status='ok', frames=4),
    'corrupted.mp4': dict(status='corrupt', frames=0),
}


def pytest_configure(config):
  """Two logical CPU devices for the multi-replica tests.

  This must happen before TensorFlow initialises its devices, so it is done
  once per test process, here; single-device code still runs on CPU:0.
  """
  del config
  # Record counts (cvrl.data.dataset_size) cached in a folder of the test
  # run's own, not the user's ~/.cache.
  import tempfile  # pylint: disable=g-import-not-at-top
  os.environ.setdefault('CVRL_CACHE_DIR', tempfile.mkdtemp(prefix='cvrl-'))
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  cpus = tf.config.list_physical_devices('CPU')
  tf.config.set_logical_device_configuration(
      cpus[0], [tf.config.LogicalDeviceConfiguration()] * NUM_LOGICAL_CPUS)


NUM_LOGICAL_CPUS = 2


def library_versions() -> str:
  """The versions the converter's behaviour depends on (FFmpeg's decoding
  and threading, libjpeg's encoding), for the suite's header: a failure on
  another machine is read against them (docs/dependencies.md)."""
  import av  # pylint: disable=g-import-not-at-top
  import PIL  # pylint: disable=g-import-not-at-top
  import pebble  # pylint: disable=g-import-not-at-top
  ffmpeg = ', '.join(f'{name} {".".join(map(str, version))}'
                     for name, version in sorted(av.library_versions.items())
                     if name in ('libavcodec', 'libavformat', 'libswscale'))
  return (f'PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info}: '
          f'{ffmpeg}), Pillow {PIL.__version__}, pebble {pebble.__version__}')


def pytest_report_header(config):
  del config
  return [f'cvrl: {library_versions()}']


def real_video(name: str) -> str:
  path = os.path.join(TESTDATA_VIDEOS, name)
  if not os.path.isfile(path):
    raise FileNotFoundError(
        f'{path} is missing: the tests read the real videos from '
        '../shared/testdata/videos beside the checkout (or set '
        'CVRL_TESTDATA_VIDEOS)')
  return path


def small_pretrain_config(**overrides):
  """The demo's pretraining task config at test size: R3D-14 at width 0.125,
  4 x 32 x 32 clips, no image summaries (then `overrides`)."""
  from official.core import exp_factory  # pylint: disable=g-import-not-at-top
  from cvrl import registry_imports  # pylint: disable=g-import-not-at-top,unused-import  # noqa: F401
  config = exp_factory.get_exp_config('cvrl_pretrain_demo').task
  config.model.backbone.cvrl_r3d.width_multiplier = 0.125
  config.train_data.num_frames = 4
  config.train_data.crop_size = 32
  config.image_summary_clips = 0
  return config.replace(**overrides) if overrides else config


def pretrained_checkpoint(folder: str, width: float, input_shape):
  """A trainer-style checkpoint of the demo's CVRL model at `width` (the
  backbone under 'backbone', momentum slots as a real run has them) in
  `folder`; returns (model, folder)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tf_keras  # pylint: disable=g-import-not-at-top
  from official.core import exp_factory  # pylint: disable=g-import-not-at-top
  from cvrl import registry_imports  # pylint: disable=g-import-not-at-top,unused-import  # noqa: F401
  from cvrl.modeling import cvrl_model  # pylint: disable=g-import-not-at-top
  config = exp_factory.get_exp_config('cvrl_pretrain_demo').task.model
  config.backbone.cvrl_r3d.width_multiplier = width
  model = cvrl_model.build_cvrl_model(config, input_shape)
  optimizer = tf_keras.optimizers.SGD(0.1, momentum=0.9)
  optimizer.apply_gradients(
      (tf.zeros_like(v), v) for v in model.trainable_variables)
  checkpoint = tf.train.Checkpoint(
      global_step=tf.Variable(5, dtype=tf.int64), model=model,
      optimizer=optimizer, **model.checkpoint_items)
  checkpoint.save(os.path.join(folder, 'ckpt'))
  return model, folder


def run_module(module, *args, check=True, timeout=600):
  """Runs `python -m module args` from the repo root; returns the result."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=REPO_ROOT)
  result = subprocess.run([sys.executable, '-m', module, *args], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
  if check and result.returncode != 0:
    raise AssertionError(f'{module} {args} exited {result.returncode}:\n'
                         f'{result.stdout}\n{result.stderr}')
  return result


@pytest.fixture(scope='session')
def synthetic_videos(tmp_path_factory):
  """A small synthetic dataset on disk: 8 classes x 4 videos of 24 frames."""
  from tfrecords_tools.datasets import synthetic  # pylint: disable=g-import-not-at-top
  root = str(tmp_path_factory.mktemp('synthetic'))
  synthetic.make_dataset(root, videos_per_class=4, val_fraction=0.25,
                              num_frames=24, size=32, fps=12, seed=0,
                              workers=2)
  return root


_MIRRORED = []


@pytest.fixture
def mirrored_strategy():
  """One MirroredStrategy over the 2 logical CPUs, shared by the process.

  Several MirroredStrategy objects in one process reuse collective instance
  keys and their collectives then abort, so every test gets the same one.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if not _MIRRORED:
    cpus = tf.config.list_logical_devices('CPU')
    assert len(cpus) >= NUM_LOGICAL_CPUS
    _MIRRORED.append(tf.distribute.MirroredStrategy(
        [d.name for d in cpus[:NUM_LOGICAL_CPUS]]))
  return _MIRRORED[0]


@pytest.fixture(scope='session')
def synthetic_records(synthetic_videos, tmp_path_factory):
  """`synthetic_videos` converted to TFRecords: {train,val}/{split}-*.tfrecord."""
  from tfrecords_tools.conversion import job  # pylint: disable=g-import-not-at-top
  from tfrecords_tools.conversion import sources  # pylint: disable=g-import-not-at-top
  from tfrecords_tools.conversion import video_frames  # pylint: disable=g-import-not-at-top
  out = tmp_path_factory.mktemp('records')
  labels = sources.read_label_map(os.path.join(synthetic_videos,
                                               'label_map.txt'))
  for split in ('train', 'val'):
    tasks = job.read_tasks(
        os.path.join(synthetic_videos, f'{split}.csv'), synthetic_videos,
        split)
    job.convert(tasks, str(out / split), labels,
                           video_frames.ConversionOptions(short_side=0), 2)
  return str(out)


@pytest.fixture(autouse=True, scope='session')
def ram_rewrites_replace():
  """TF's ram:// file system stands in for gs:// in the tests, but it
  appends when a file is written again (GFile(path, 'w') and
  gfile.copy(..., overwrite=True) keep the old bytes), where gs:// and
  local disks replace it. Here a ram:// file opened for writing, or copied
  over, is deleted first, so that a test of a rewrite (params.yaml on
  resume, a manifest or label map written again) sees what gs:// does."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  real_gfile, real_copy = tf.io.gfile.GFile, tf.io.gfile.copy

  def replace(path):
    path = os.fspath(path)
    if path.startswith('ram://') and tf.io.gfile.exists(path):
      tf.io.gfile.remove(path)

  class GFile(real_gfile):  # pylint: disable=missing-class-docstring

    def __init__(self, name, mode='r'):
      if 'w' in mode:
        replace(name)
      super().__init__(name, mode)

  def copy(src, dst, overwrite=False):
    if overwrite:
      replace(dst)
    return real_copy(src, dst, overwrite)
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(tf.io.gfile, 'GFile', GFile)
    patch.setattr(tf.io.gfile, 'copy', copy)
    yield
