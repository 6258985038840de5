"""augment_on: device — the host sends uint8 crops and per-clip parameters,
the train step does the per-pixel work; the same seed gives the same clips."""

import numpy as np
import pytest
import tensorflow as tf

from official.core import exp_factory
from official.core import task_factory

from cvrl import registry_imports  # pylint: disable=unused-import  # noqa: F401
from cvrl.configs import base
from cvrl.configs import video_data
from cvrl.data import pipelines
from cvrl.data import spatial_augment
from tests import video_records
from tests.conftest import small_pretrain_config

T, S = 4, 32
ALWAYS = dict(flip_prob=1.0, color_jitter_prob=1.0, grayscale_prob=0.5,
              blur_prob=1.0, solarize_prob=0.5)
VIEW_CONFIGS = {
    'paper': {},
    'released_code_views': {'view_2': {'blur_prob': 0.1,
                                       'solarize_prob': 0.2}},
    'every_op_on': {'view_1': ALWAYS, 'view_2': ALWAYS},
    'per_frame_ablation': {'temporally_consistent': False},
    'no_spatial_ablation': {'enabled': False},
}


@pytest.fixture(scope='module')
def records(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('dev') / 'videos.tfrecord')
  videos = [([video_records.textured_frame(48, 64, seed=10 * v + k)
              for k in range(12 + v)], v % 3) for v in range(6)]
  return video_records.write_records(path, videos)


def _config(path, augment_on, spatial=None, **overrides):
  config = video_data.VideoDataConfig(
      input_path=path, global_batch_size=3, num_frames=T, frame_stride=2,
      crop_size=S, seed=5, shuffle_buffer_size=4, augment_on=augment_on,
      **overrides)
  if spatial:
    config = config.replace(spatial=spatial)
  return config


def _take(config, n=2):
  return [{k: v.numpy() for k, v in b.items()}
          for b in pipelines.build_dataset(config).take(n)]


@pytest.mark.parametrize('name', sorted(VIEW_CONFIGS))
@pytest.mark.parametrize('use_xla', [True, False])
def test_device_mode_gives_the_host_modes_clips(records, name, use_xla):
  spatial = VIEW_CONFIGS[name]
  host = _take(_config(records, 'host', spatial, xla_augment=use_xla))
  device = _take(_config(records, 'device', spatial, xla_augment=use_xla))
  for h, d in zip(host, device):
    assert d['image'].dtype == np.uint8 and d['image'].shape == (6, T, S, S, 3)
    per_frame = name == 'per_frame_ablation'
    assert d['view_params'].shape == (
        (6, T, spatial_augment.NUM_PIXEL_PARAMS) if per_frame
        else (6, spatial_augment.NUM_PIXEL_PARAMS))
    np.testing.assert_array_equal(h['label'], d['label'])
    augment = (spatial_augment.apply_batch_xla if use_xla
               else spatial_augment.apply_batch)
    on_device = augment(tf.constant(d['image']),
                        tf.constant(d['view_params'])).numpy()
    np.testing.assert_allclose(on_device, h['image'], atol=1e-4)


def test_temporal_ablation_and_released_code_views_in_device_mode(records):
  spatial = VIEW_CONFIGS['released_code_views']
  for temporal in ({'enabled': False}, {'gap_shape': 'uniform'}):
    host = _take(_config(records, 'host', spatial, temporal=temporal), 1)[0]
    device = _take(_config(records, 'device', spatial, temporal=temporal),
                   1)[0]
    on_device = spatial_augment.apply_batch(
        tf.constant(device['image']), tf.constant(device['view_params']))
    np.testing.assert_allclose(on_device.numpy(), host['image'], atol=1e-4)


def test_uint8_transfer_is_a_quarter_of_float32(records):
  host = _take(_config(records, 'host'), 1)[0]
  device = _take(_config(records, 'device'), 1)[0]
  sent = device['image'].nbytes + device['view_params'].nbytes
  assert host['image'].dtype == np.float32
  assert sent < 0.26 * host['image'].nbytes


def test_device_mode_is_checked():
  config = _config('x', 'device')
  with pytest.raises(base.ConfigError, match='augment_on'):
    config.replace(mode='train').validate()
  with pytest.raises(base.ConfigError, match='augment_on'):
    config.replace(output_layout='dict').validate()
  with pytest.raises(base.ConfigError, match='augment_on'):
    config.replace(augment_on='gpu').validate()


def _task(augment_on, jit=False):
  return task_factory.get_task(small_pretrain_config(
      train_data={'augment_on': augment_on}, image_summary_clips=2,
      jit_compile=jit))


@pytest.mark.parametrize('jit', [False, True])
def test_train_step_on_device_augmented_inputs_matches_host_mode(records,
                                                                 jit):
  """Same weights, same seed: the losses of a host-mode batch and of the
  device-mode batch (augmented inside the step) agree; the image summary
  shows the augmented views."""
  demo_views = exp_factory.get_exp_config('cvrl_pretrain_demo').task
  spatial = demo_views.train_data.spatial.as_dict()
  host = _take(_config(records, 'host', spatial), 1)[0]
  device = _take(_config(records, 'device', spatial), 1)[0]
  logs = {}
  for mode, batch in (('host', host), ('device', device)):
    task = _task(mode, jit)
    model = task.build_model()
    inputs = {k: tf.constant(v) for k, v in batch.items()}
    prepared = task.device_preprocess(inputs)
    assert 'view_params' not in prepared
    np.testing.assert_allclose(prepared['image'].numpy(), host['image'],
                               atol=1e-4)  # what the model and summary see
    losses, _ = task.step_losses(model, prepared, training=False)
    logs[mode] = float(losses['contrastive_loss'])
  np.testing.assert_allclose(logs['device'], logs['host'], rtol=1e-4)


def test_train_step_with_device_mode_inputs_and_its_image_summary(records,
                                                                   tmp_path):
  """The step learns from uint8 inputs, and TensorBoard's augmented_views
  shows the views after the device-side augmentation (equal to host mode's)."""
  import tf_keras  # pylint: disable=g-import-not-at-top
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  task = _task('device', jit=True)
  model = task.build_model()
  batch = _take(_config(records, 'device'), 1)[0]
  host = _take(_config(records, 'host'), 1)[0]
  inputs = {k: tf.constant(v) for k, v in batch.items()}
  writer = tf.summary.create_file_writer(str(tmp_path))
  before = [v.numpy().copy() for v in model.trainable_variables]
  with writer.as_default(step=0):
    out = task.train_step(inputs, model, tf_keras.optimizers.SGD(0.1),
                          task.build_metrics())
  writer.flush()
  assert np.isfinite(float(out['loss']))
  assert any(np.abs(v.numpy() - b).max() > 0
             for v, b in zip(model.trainable_variables, before))
  acc = event_accumulator.EventAccumulator(
      str(tmp_path), size_guidance={event_accumulator.TENSORS: 0})
  acc.Reload()
  event = acc.Tensors('augmented_views')[0]
  png = tf.make_ndarray(event.tensor_proto)[2]  # [width, height, image 1...]
  shown = tf.io.decode_png(png).numpy().astype(np.float32) / 255.0
  # Clip 0: its first view's 4 frames side by side, above its second
  # view's (the batch holds 3 first views, then 3 second views).
  first, second = host['image'][0], host['image'][3]
  want = np.concatenate([np.concatenate(list(first), axis=1),
                         np.concatenate(list(second), axis=1)], axis=0)
  assert shown.shape == want.shape
  np.testing.assert_allclose(shown, want, atol=1.5 / 255)


def test_packing_follows_the_one_field_list():
  # Every per-pixel choice of ClipParams has its row, in ClipParams order,
  # and the sizes add up: a new field without a row fails here.
  names = [f.name for f in spatial_augment.PIXEL_FIELDS]
  assert names == [n for n in spatial_augment.ClipParams._fields
                   if n != 'window']
  assert spatial_augment.NUM_PIXEL_PARAMS == len(
      spatial_augment.IDENTITY_PIXEL_PARAMS) == 14
  config = video_data.ViewAugmentationConfig(solarize_prob=0.5)
  for seed in range(8):
    params = spatial_augment.draw_clip_params(
        tf.constant([seed, 3]), config, (40, 60))
    back = spatial_augment.unpack_pixel_params(
        spatial_augment.pack_pixel_params(params))
    for name in names:
      want, got = getattr(params, name), getattr(back, name)
      assert got.dtype == want.dtype and got.shape == want.shape, name
      np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=name)
  # The identity vector reads back as "change nothing".
  identity = spatial_augment.unpack_pixel_params(
      tf.constant(spatial_augment.IDENTITY_PIXEL_PARAMS, tf.float32))
  assert not any(bool(getattr(identity, n)) for n in
                 ('flip', 'jitter', 'grayscale', 'blur', 'solarize'))
  np.testing.assert_array_equal(identity.order.numpy(), [0, 1, 2, 3])
