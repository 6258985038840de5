"""augment_on: device — the host sends each decoded crop window on a uint8
canvas with its size and the clip's parameters, the train step resizes it
and does the per-pixel work; the same seed gives the same clips."""

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
from cvrl.data import window_canvas
from tests import video_records
from tests.conftest import small_pretrain_config

T, S = 4, 32
FRAME = (48, 64)  # the test records' frames
WINDOW_PARAMS = window_canvas.NUM_WINDOW_PARAMS
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
  overrides.setdefault('device_canvas', FRAME)
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
  num_params = WINDOW_PARAMS + spatial_augment.NUM_PIXEL_PARAMS
  for h, d in zip(host, device):
    # Example-major: [B, 2, ...]; the step puts the first views first.
    assert d['image'].dtype == np.uint8
    assert d['image'].shape == (3, 2, T) + FRAME + (3,)
    per_frame = name == 'per_frame_ablation'
    assert d['view_params'].shape == (
        (3, 2, T, num_params) if per_frame else (3, 2, num_params))
    np.testing.assert_array_equal(h['label'], d['label'])
    on_device = pipelines.device_views(
        tf.constant(d['image']), tf.constant(d['view_params']), S,
        use_xla).numpy()
    np.testing.assert_allclose(on_device, h['image'], atol=1e-4)


def test_temporal_ablation_and_released_code_views_in_device_mode(records):
  spatial = VIEW_CONFIGS['released_code_views']
  for temporal in ({'enabled': False}, {'gap_shape': 'uniform'}):
    host = _take(_config(records, 'host', spatial, temporal=temporal), 1)[0]
    device = _take(_config(records, 'device', spatial, temporal=temporal),
                   1)[0]
    on_device = pipelines.device_views(
        tf.constant(device['image']), tf.constant(device['view_params']), S)
    np.testing.assert_allclose(on_device.numpy(), host['image'], atol=1e-4)


def test_device_mode_sends_the_canvas_in_uint8(records):
  """Bytes per view: the canvas at one byte a value and the parameters;
  host mode sends the resized view in float32."""
  canvas = (40, 48)
  host = _take(_config(records, 'host'), 1)[0]
  device = _take(_config(records, 'device', device_canvas=canvas), 1)[0]
  assert host['image'].dtype == np.float32
  assert host['image'].nbytes == 6 * T * S * S * 3 * 4
  assert device['image'].nbytes == 6 * T * canvas[0] * canvas[1] * 3
  assert device['view_params'].nbytes == 6 * 4 * (
      WINDOW_PARAMS + spatial_augment.NUM_PIXEL_PARAMS)


@pytest.mark.parametrize('out_size', [5, 16, 37])
def test_window_resized_on_device_equals_tf_image_resize(out_size):
  """The step's resize (gathers and lerps) is tf.image.resize's bilinear on
  the window alone: up- and downscaling, odd sizes, a one-pixel window, and
  a window sent transposed."""
  rng = np.random.default_rng(out_size)
  canvas_hw = (24, 30)
  for h, w in ((24, 30), (7, 19), (1, 1), (13, 2), (30, 20)):
    window = rng.integers(0, 256, size=(3, h, w, 3)).astype(np.uint8)
    canvas, params = window_canvas.place(tf.constant(window), canvas_hw)
    assert canvas.shape == (3,) + canvas_hw + (3,)
    transposed = (h, w) == (30, 20)
    np.testing.assert_array_equal(params.numpy(),
                                  [w, h, 1, 0] if transposed else [h, w, 0, 0])
    got = window_canvas.resize_window(canvas, params, out_size).numpy()
    want = tf.image.resize(window, [out_size, out_size]).numpy()
    np.testing.assert_allclose(got, want, atol=2e-3)  # of 255
    # What is outside the window never leaks in: other canvas contents
    # give the same resize.
    noisy = canvas.numpy().copy()
    ch, cw = (w, h) if transposed else (h, w)
    noisy[:, ch:] = 255
    noisy[:, :, cw:] = 255
    np.testing.assert_array_equal(
        window_canvas.resize_window(tf.constant(noisy), params,
                                    out_size).numpy(), got)


def test_a_window_larger_than_the_canvas_is_shrunk_and_counted():
  # A smooth picture, where two interpolations stay close to one.
  coarse = np.random.default_rng(0).uniform(0, 255, size=(2, 5, 6, 3))
  window = np.round(tf.image.resize(coarse, [40, 50]).numpy()).astype(
      np.uint8)
  canvas, params = window_canvas.place(tf.constant(window), (20, 30))
  # Fits neither way: scaled by min(20 / 40, 30 / 50) = 0.5, aspect kept.
  np.testing.assert_array_equal(params.numpy(), [20, 25, 0, 1])
  np.testing.assert_array_equal(canvas.numpy()[:, 20:], 0)
  np.testing.assert_array_equal(canvas.numpy()[:, :, 25:], 0)
  got = window_canvas.resize_window(canvas, params, 16).numpy()
  want = tf.image.resize(window, [16, 16]).numpy()
  # Two interpolations instead of one: close, not equal.
  assert 0 < np.abs(got - want).mean() < 2.0


def test_tight_canvas_pipeline_counts_shrunk_views(records):
  """On a canvas smaller than the frames, views that fit transposed equal
  host mode's; the others are flagged shrunk, and the step reports their
  fraction as windows_shrunk."""
  host = _take(_config(records, 'host'), 2)
  device = _take(_config(records, 'device', device_canvas=(30, 44)), 2)
  flags = np.concatenate([d['view_params'][..., window_canvas.SHRUNK]
                          for d in device])
  assert 0 < flags.mean() < 1  # the test data has both kinds
  for h, d in zip(host, device):
    views = pipelines.device_views(
        tf.constant(d['image']), tf.constant(d['view_params']), S).numpy()
    # [B, 2] -> first views first, as the views.
    exact = d['view_params'][..., window_canvas.SHRUNK].T.reshape(-1) < 0.5
    np.testing.assert_allclose(views[exact], h['image'][exact], atol=1e-4)
    assert np.abs(views[~exact] - h['image'][~exact]).mean() < 0.05
  task = _task('device')
  inputs = {k: tf.constant(v) for k, v in device[0].items()}
  prepared = task.device_preprocess(inputs)
  np.testing.assert_allclose(
      float(prepared['windows_shrunk']),
      device[0]['view_params'][..., window_canvas.SHRUNK].mean())


def test_device_mode_is_checked():
  config = _config('x', 'device')
  with pytest.raises(base.ConfigError, match='augment_on'):
    config.replace(mode='train').validate()
  with pytest.raises(base.ConfigError, match='augment_on'):
    config.replace(output_layout='dict').validate()
  with pytest.raises(base.ConfigError, match='augment_on'):
    config.replace(augment_on='gpu').validate()
  with pytest.raises(base.ConfigError, match='device_canvas'):
    config.replace(device_canvas=(0, 64)).validate()


def _task(augment_on, jit=False):
  return task_factory.get_task(small_pretrain_config(
      train_data={'augment_on': augment_on, 'device_canvas': FRAME},
      image_summary_clips=2, jit_compile=jit))


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
