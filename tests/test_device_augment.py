"""augment_on: device — the host decodes a batch's crop windows into one
uint8 buffer with their offsets, sizes and the clips' parameters; the train
step resizes them and does the per-pixel work; the same seed gives the same
clips as host mode."""

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
from cvrl.data import window_buffer
from tests import video_records
from tests.conftest import small_pretrain_config

T, S = 4, 32
FRAME = (48, 64)  # the test records' frames
WINDOW_PARAMS = window_buffer.NUM_WINDOW_PARAMS
SHRUNK = window_buffer.SHRUNK
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
  # Room for every window (the centre-crop ablation's fill 0.75 of these
  # frames): nothing shrunk unless a test asks for a smaller budget.
  overrides.setdefault('device_budget', 1.0)
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


def _on_device(batch, config):
  return pipelines.device_views(
      tf.constant(batch['image']), tf.constant(batch[pipelines.VIEW_OFFSETS]),
      tf.constant(batch[pipelines.VIEW_PARAMS]), config).numpy()


@pytest.mark.parametrize('name', sorted(VIEW_CONFIGS))
@pytest.mark.parametrize('use_xla', [True, False])
def test_device_mode_gives_the_host_modes_clips(records, name, use_xla):
  spatial = VIEW_CONFIGS[name]
  host = _take(_config(records, 'host', spatial, xla_augment=use_xla))
  config = _config(records, 'device', spatial, xla_augment=use_xla)
  device = _take(config)
  num_params = WINDOW_PARAMS + spatial_augment.NUM_PIXEL_PARAMS
  per_frame = name == 'per_frame_ablation'
  views = (3, 2, T) if per_frame else (3, 2)
  budget = window_buffer.budget_bytes(3, T, FRAME, config.device_budget)
  for h, d in zip(host, device):
    # One buffer a batch; example-major offsets and params [B, 2, ...].
    assert d['image'].dtype == np.uint8
    assert d['image'].shape == (budget + FRAME[1] * 3,)
    assert d[pipelines.VIEW_OFFSETS].shape == views
    assert d[pipelines.VIEW_PARAMS].shape == views + (num_params,)
    assert not d[pipelines.VIEW_PARAMS][..., SHRUNK].any()
    np.testing.assert_array_equal(h['label'], d['label'])
    np.testing.assert_allclose(_on_device(d, config), h['image'], atol=1e-4)


def test_temporal_ablation_and_released_code_views_in_device_mode(records):
  spatial = VIEW_CONFIGS['released_code_views']
  for temporal in ({'enabled': False}, {'gap_shape': 'uniform'}):
    host = _take(_config(records, 'host', spatial, temporal=temporal), 1)[0]
    config = _config(records, 'device', spatial, temporal=temporal)
    device = _take(config, 1)[0]
    np.testing.assert_allclose(_on_device(device, config), host['image'],
                               atol=1e-4)


def test_the_buffer_holds_each_window_once_back_to_back(records):
  """Offsets are the running sum of the views' bytes (T frames of h x
  (left + w) x 3), the windows are the frames' crops exactly, and the rest
  is zeros: the host sends each decoded byte once and nothing resized."""
  config = _config(records, 'device', device_budget=1.0)
  batch = _take(config, 1)[0]
  params = batch[pipelines.VIEW_PARAMS].reshape(6, -1)
  offsets = batch[pipelines.VIEW_OFFSETS].reshape(6)
  left = params[:, window_buffer.LEFT]
  sizes = T * params[:, 0] * (left + params[:, 1]) * 3
  np.testing.assert_array_equal(offsets, np.concatenate([[0], np.cumsum(
      sizes)[:-1]]).astype(np.int64))
  assert (params[:, 0] * params[:, 1] < FRAME[0] * FRAME[1]).any()
  np.testing.assert_array_equal(batch['image'][int(sizes.sum()):], 0)
  # Host mode's bytes for the same views: float32 resized crops.
  host = _take(_config(records, 'host'), 1)[0]
  assert host['image'].nbytes == 6 * T * S * S * 3 * 4
  assert batch['image'].nbytes == window_buffer.buffer_length(
      window_buffer.budget_bytes(3, T, FRAME, 1.0), FRAME)


def test_a_partial_last_batch_is_packed_too(records):
  """Without drop_remainder (an evaluation's last batch): 6 videos in
  batches of 4 -> 4 and 2 examples, each equal to host mode's."""
  def config(mode):
    return _config(records, mode).replace(
        global_batch_size=4, drop_remainder=False, repeat=False)
  host, device = _take(config('host'), 3), _take(config('device'), 3)
  assert [len(d['label']) for d in device] == [4, 2]
  for h, d in zip(host, device):
    np.testing.assert_allclose(_on_device(d, config('device')), h['image'],
                               atol=1e-4)


def test_windows_decoded_alone_start_at_their_jpeg_column(records):
  """A window decoded alone is stored from the multiple of JPEG_COLUMN at or
  left of its x (libjpeg's own start: no realignment copy); its `left`
  extra columns are the frame's pixels there, and the window after them is
  libjpeg's cropped decode of the window as drawn, byte for byte."""
  config = _config(records, 'device', device_budget=1.0,
                   cropped_decode_max_area=1.0)
  dataset = pipelines.source_dataset(config).enumerate().map(
      lambda position, example: pipelines.pretrain_views(
          example, pipelines.example_seed(config.seed, 0, position), config))
  examples = [{k: v.numpy() for k, v in e.items()}
              for e in dataset.take(3)]
  batch = _take(config, 1)[0]
  params = batch[pipelines.VIEW_PARAMS].reshape(6, -1)
  offsets = batch[pipelines.VIEW_OFFSETS].reshape(6)
  lefts = []
  for view in range(6):
    example, which = examples[view // 2], view % 2  # example-major
    y, x, h, w, cropped = example[pipelines.VIEW_DRAWS][which][:5].astype(
        int)
    assert cropped
    left = int(params[view, window_buffer.LEFT])
    assert left == x % window_buffer.JPEG_COLUMN
    assert list(params[view, :4]) == [h, w, 0, 0]
    lefts.append(left)
    stored = batch['image'][offsets[view]:offsets[view] + T * h * (left + w)
                            * 3].reshape(T, h, left + w, 3)
    for k, frame in enumerate(example[pipelines.ENCODED][which]):
      np.testing.assert_array_equal(
          stored[k, :, left:],
          tf.image.decode_and_crop_jpeg(frame, [y, x, h, w]).numpy())
      # The extra columns are the frame's pixels left of the window (up to
      # libjpeg's edge handling, which differs between cropped and whole).
      if left:
        whole = tf.image.decode_jpeg(frame).numpy()[y:y + h, x - left:x]
        assert np.abs(stored[k, :, :left].astype(int) - whole).mean() < 2
  assert any(lefts)


def _buffer_with(window, offset, row_width, fill=255):
  """A buffer of `fill` with `window` [n, h, w, 3] flattened at `offset`."""
  flat = window.reshape(-1)
  buffer = np.full(offset + flat.size + row_width * 3 + 5, fill, np.uint8)
  buffer[offset:offset + flat.size] = flat
  return tf.constant(buffer)


@pytest.mark.parametrize('out_size', [5, 16, 37])
@pytest.mark.parametrize('xla_gather', [False, True])
def test_window_resized_on_device_equals_tf_image_resize(out_size,
                                                         xla_gather):
  """The step's resize (row slices, gathers and lerps) is tf.image.resize's
  bilinear on the window alone: up- and downscaling, odd sizes, a
  one-pixel window, a window sent transposed, a window whose stored rows
  begin with `left` extra columns; whatever surrounds the window in the
  buffer never leaks in. xla_gather: the rows read with XLA's gather
  slices, as inside the compiled step."""
  rng = np.random.default_rng(out_size)
  row_width = 30
  resize = window_buffer.resize_window
  if xla_gather:
    resize = tf.function(resize, jit_compile=True)
  for h, w, transposed, left in ((24, 30, 0, 0), (7, 19, 0, 0), (1, 1, 0, 0),
                                 (13, 2, 0, 0), (20, 30, 1, 0),
                                 (9, 17, 0, 11), (1, 1, 0, 15)):
    window = rng.integers(0, 256, size=(3, h, w, 3)).astype(np.uint8)
    stored = np.transpose(window, (0, 2, 1, 3)) if transposed else window
    params = tf.constant([stored.shape[1], stored.shape[2], transposed, 0,
                          left], tf.float32)
    extra = rng.integers(0, 256, size=stored.shape[:2] + (left, 3))
    stored = np.concatenate([extra.astype(np.uint8), stored], axis=2)
    want = tf.image.resize(window, [out_size, out_size]).numpy()
    results = []
    for offset, fill in ((0, 255), (101, 0), (7, 255)):
      got = resize(_buffer_with(stored, offset, row_width, fill),
                   tf.constant(offset), params, 3, row_width, out_size,
                   xla_gather=xla_gather).numpy()
      np.testing.assert_allclose(got, want, atol=2e-3)  # of 255
      results.append(got)
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


def _smooth_frames(n, h, w, seed=0):
  coarse = np.random.default_rng(seed).uniform(0, 255, size=(n, 5, 6, 3))
  return np.round(tf.image.resize(coarse, [h, w]).numpy()).astype(np.uint8)


def _jpeg_views(frames_per_view):
  """Encoded JPEG frames [N, n] of smooth pictures, and the frames."""
  frames = [_smooth_frames(len(v), 40, 50, seed=i)
            for i, v in enumerate(frames_per_view)]
  encoded = [[tf.io.encode_jpeg(f, quality=100).numpy() for f in v]
             for v in frames]
  return tf.constant(encoded), frames


def test_plan_transposes_shrinks_and_keeps_the_budget():
  """Canvas 20 x 30: a window is sent as is when at most 30 wide with at
  most 600 pixels (the step reads rows of canvas width; height is free).
  One sent as is and decoded alone starts at its JPEG column."""
  draws = tf.constant([[0, 21, 20, 25, 1],   # fits, decoded alone: left 5
                       [0, 0, 30, 20, 1],    # portrait, 600 pixels: fits
                       [0, 18, 10, 40, 1],   # too wide: fits transposed
                       [0, 0, 40, 50, 0],    # neither: scaled to fit
                       [0, 3, 25, 25, 1],    # narrow enough, 625 pixels
                       [0, 37, 10, 10, 0],   # decoded whole: no left
                       [0, 3, 20, 29, 1]],   # left 3 would not fit: none
                      tf.int32)
  placed = window_buffer.plan(draws, 2, (20, 30), 10**6)
  h, w, transposed, shrunk, left, offsets = (x.numpy() for x in placed)
  # Scaled by min(30 / w, sqrt(600 / (h w))), floored.
  np.testing.assert_array_equal(h, [20, 30, 40, 21, 24, 10, 20])
  np.testing.assert_array_equal(w, [25, 20, 10, 27, 24, 10, 29])
  np.testing.assert_array_equal(transposed, [0, 0, 1, 0, 0, 0, 0])
  np.testing.assert_array_equal(shrunk, [0, 0, 0, 1, 1, 0, 0])
  np.testing.assert_array_equal(left, [21 % 16, 0, 0, 0, 0, 0, 0])
  assert (left + w <= 30).all() and (h * (left + w) <= 600).all()
  used = 2 * h * (left + w) * 3
  np.testing.assert_array_equal(offsets, np.cumsum(used) - used)
  # Over the budget: every view scaled by one factor, all flagged, no extra
  # columns, the sum within the budget and each view no larger than before.
  budget = 6000
  h2, w2, _, shrunk2, left2, offsets2 = (
      x.numpy() for x in window_buffer.plan(draws, 2, (20, 30), budget))
  assert shrunk2.all() and not left2.any()
  used = 2 * h2 * w2 * 3
  assert used.sum() <= budget and used.sum() > 0.8 * budget
  assert (h2 <= h).all() and (w2 <= w).all()
  np.testing.assert_array_equal(offsets2, np.cumsum(used) - used)


def test_packed_windows_are_the_frames_crops_and_shrunk_ones_are_close():
  encoded, frames = _jpeg_views([range(2), range(2)])
  decoded = [tf.io.decode_jpeg(e).numpy() for e in encoded.numpy().ravel()]
  draws = tf.constant([[3, 4, 20, 30, 1], [0, 0, 40, 50, 0]], tf.int32)
  canvas = (20, 30)
  buffer, offsets, window = window_buffer.pack(encoded, draws, canvas, 10**5)
  buffer, offsets, window = buffer.numpy(), offsets.numpy(), window.numpy()
  assert buffer.shape == (window_buffer.buffer_length(10**5, canvas),)
  np.testing.assert_array_equal(window[:, :2], [[20, 30], [21, 27]])
  # View 0 is canvas-wide: its 4 columns left of x would not fit.
  np.testing.assert_array_equal(window[:, 2:], [[0, 0, 0], [0, 1, 0]])
  # View 0 fits: its frames' windows decoded alone (as host mode decodes
  # them: libjpeg's cropped decode, which may differ from a slice of the
  # whole frame at the window's edge), byte for byte.
  got = buffer[:2 * 20 * 30 * 3].reshape(2, 20, 30, 3)
  for k in range(2):
    np.testing.assert_array_equal(got[k], tf.image.decode_and_crop_jpeg(
        encoded[0, k], [3, 4, 20, 30]).numpy())
  # View 1 was shrunk: resized from it, it is close to the whole window
  # resized once (two interpolations instead of one).
  out = window_buffer.resize_window(tf.constant(buffer), offsets[1],
                                    window[1], 2, canvas[1], 16).numpy()
  want = tf.image.resize(np.stack(decoded[2:]), [16, 16]).numpy()
  assert 0 < np.abs(out - want).mean() < 2.0


@pytest.mark.parametrize('device_canvas,device_budget',
                         [((30, 44), 1.0), ((64, 40), 1.0), (FRAME, 0.25)])
def test_shrunk_views_are_counted(records, device_canvas, device_budget):
  """A canvas smaller than the frames (budget 1.0: a batch of views that
  fit is never over it), or a budget below what the batch's windows need:
  views that fit (as is or transposed) in a batch within budget equal host
  mode's; the others are flagged shrunk, close to host mode's, and the
  step reports their fraction as windows_shrunk."""
  host = _take(_config(records, 'host'), 2)
  config = _config(records, 'device', device_canvas=device_canvas,
                   device_budget=device_budget)
  device = _take(config, 2)
  flags = np.concatenate([d[pipelines.VIEW_PARAMS][..., SHRUNK].ravel()
                          for d in device])
  assert 0 < flags.mean() <= 1
  assert (device_budget < 0.5) == flags.all()  # a whole batch shrinks
  if device_canvas == (64, 40):  # narrower than the frames: some transposed
    column = window_buffer.WINDOW_FIELDS.index('transposed')
    transposed = np.concatenate([d[pipelines.VIEW_PARAMS][..., column].ravel()
                                 for d in device])
    assert 0 < transposed.mean() < 1 and not (transposed * flags).any()
  for h, d in zip(host, device):
    views = _on_device(d, config)
    # [B, 2] -> first views first, as the views.
    exact = d[pipelines.VIEW_PARAMS][..., SHRUNK].T.reshape(-1) < 0.5
    np.testing.assert_allclose(views[exact], h['image'][exact], atol=1e-4)
    assert np.abs(views[~exact] - h['image'][~exact]).mean() < 0.05
  task = _task('device', train_data={'device_canvas': device_canvas,
                                     'device_budget': device_budget})
  inputs = {k: tf.constant(v) for k, v in device[0].items()}
  prepared = task.device_preprocess(inputs)
  np.testing.assert_allclose(
      float(prepared['windows_shrunk']),
      device[0][pipelines.VIEW_PARAMS][..., SHRUNK].mean())


def test_replicas_each_get_their_buffer(records, mirrored_strategy):
  """Two replicas fed as Model Garden's trainer feeds them
  (distribute_datasets_from_function: one pipeline on this worker, its
  per-replica batches dealt to the replicas in turn): each replica's views
  are those of its batch processed on one device."""
  config = _config(records, 'device').replace(global_batch_size=4)
  task = _task('device')

  def dataset(context):
    return pipelines.build_dataset(config, context)
  distributed = iter(
      mirrored_strategy.distribute_datasets_from_function(dataset))
  views = mirrored_strategy.run(
      lambda b: task.device_preprocess(b)['image'], args=(next(distributed),))
  alone = iter(dataset(tf.distribute.InputContext(1, 0, 2)))
  for got in mirrored_strategy.experimental_local_results(views):
    want = task.device_preprocess(next(alone))['image']
    assert got.shape == (2 * 2, T, S, S, 3)  # 2 examples, 2 views each
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-6)


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
  for budget in (-0.1, 1.5):  # 0 is the per-replica default
    with pytest.raises(base.ConfigError, match='device_budget'):
      config.replace(device_budget=budget).validate()
  # A buffer beyond int32 offsets: refused before any step, naming it.
  huge = config.replace(global_batch_size=4096, num_frames=64,
                        device_canvas=(512, 512))
  with pytest.raises(base.ConfigError, match='device_budget=1.0: a buffer'):
    pipelines.build_dataset(huge)


def _task(augment_on, jit=False, train_data=None):
  return task_factory.get_task(small_pretrain_config(
      train_data={'augment_on': augment_on, 'device_canvas': FRAME,
                  **(train_data or {})},
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


def test_the_default_budget_rarely_shrinks_a_batch_of_the_papers_crops():
  """device_budget 0 (the default): the per-replica batch's budget. On
  16:9 frames at short side 256 with the paper's crops, resampled batches
  of real `sample_crop_window` views (their bytes as `plan` stores them)
  exceed it at most about once in 10^5 at every per-replica batch; the old
  fixed 0.7 shrank a batch of 4 once in ~110 (a statistical check: 6,000
  views, 200,000 batches)."""
  from benchmarks import window_shrink  # pylint: disable=g-import-not-at-top
  assert video_data.VideoDataConfig().device_budget == 0
  per_view = window_shrink.view_bytes(6000, 256, 455, 16, (256, 456))
  batches = (1, 2, 4, 8, 16)
  auto = {b: window_buffer.auto_budget(b) for b in batches}
  assert [auto[b] for b in batches] == sorted(auto.values(), reverse=True)
  assert auto[1] == 1.0
  rates = {}
  for b in batches:
    rates.update(window_shrink.shrink_rates(per_view, [b], [auto[b], 0.7],
                                            16, (256, 456), 200_000))
  for b in batches:
    assert rates[b, auto[b]] <= 2e-5, (b, rates[b, auto[b]])
  assert rates[4, 0.7] > 1 / 300  # what the fixed budget did
  config = video_data.VideoDataConfig(augment_on='device', num_frames=16)
  assert pipelines.device_budget(config, 4) == window_buffer.budget_bytes(
      4, 16, (256, 456), 0.85)
