"""Background debiasing (FAME, BE): what moves is kept, the background is
another's, only second views change, same seed -> same batch, host == device."""

import numpy as np
import pytest
import tensorflow as tf

from official.core import task_factory

from cvrl import registry_imports  # pylint: disable=unused-import  # noqa: F401
from cvrl.configs import base
from cvrl.configs import video_data
from cvrl.data import background_debias
from cvrl.data import pipelines
from tests import video_records
from tests.conftest import small_pretrain_config

T, S = 6, 16


def _batch(b=4, seed=0):
  """Clips whose background is constant per video (value 0.1 * (v + 1) in
  all channels) with a 3 x 3 white square moving one pixel right per frame
  at row 4 + v: where it is in every frame is known exactly."""
  views = np.zeros((b, T, S, S, 3), np.float32)
  square = np.zeros((b, T, S, S), bool)
  for v in range(b):
    views[v] = 0.1 * (v + 1)
    for t in range(T):
      views[v, t, 4 + v:7 + v, 2 + t:5 + t] = 1.0
      square[v, t, 4 + v:7 + v, 2 + t:5 + t] = True
  seeds = tf.random.experimental.stateless_split([seed, 1], b)
  return tf.constant(views), square, seeds


def test_still_background_is_the_temporal_median():
  views, _, _ = _batch()
  still = background_debias.still_background(views).numpy()
  assert still.shape == (4, 1, S, S, 3)
  for v in range(4):  # the square covers a pixel in at most 3 of 6 frames
    np.testing.assert_allclose(still[v], 0.1 * (v + 1))


@pytest.mark.parametrize('num_frames', [1, 2, 3, 5, 6, 16, 17])
def test_still_background_is_numpys_lower_median_with_ties(num_frames):
  # Few distinct values: many ties; shapes of a small batch of clips.
  rng = np.random.default_rng(num_frames)
  clips = rng.integers(0, 5, size=(3, num_frames, 4, 5, 3)).astype(np.float32)
  expected = np.sort(clips, axis=1)[:, (num_frames - 1) // 2][:, None]
  got = background_debias.still_background(tf.constant(clips)).numpy()
  np.testing.assert_array_equal(got, expected)
  # The same under XLA, as the train step runs it (augment_on: device).
  compiled = tf.function(background_debias.still_background,
                         jit_compile=True)
  np.testing.assert_array_equal(compiled(tf.constant(clips)).numpy(),
                                expected)


@pytest.mark.parametrize('height,width', [(1, 1), (1, 5), (2, 3), (7, 4),
                                          (32, 32)])
def test_box_mean_is_tf_avg_pool_same(height, width):
  # The reference: TF's own 3 x 3 'SAME' average pool, which counts only
  # the neighbours inside the image at the borders.
  rng = np.random.default_rng(height * 10 + width)
  images = rng.uniform(0, 3, size=(5, height, width)).astype(np.float32)
  expected = tf.nn.avg_pool2d(images[..., None], 3, 1, 'SAME')[..., 0]
  np.testing.assert_allclose(background_debias.box_mean_3x3(images), expected,
                             rtol=1e-6, atol=1e-6)
  compiled = tf.function(background_debias.box_mean_3x3, jit_compile=True)
  np.testing.assert_allclose(compiled(tf.constant(images)), expected,
                             rtol=1e-6, atol=1e-6)


def test_motion_mask_keeps_the_ratio_farthest_with_ties():
  # Values in quarters: many smoothed distances tie. The mask must hold
  # exactly the pixels at or above each frame's keep-th largest smoothed
  # distance (numpy's sort over TF's avg_pool2d), ties included, none at 0.
  rng = np.random.default_rng(3)
  clips = rng.integers(0, 4, size=(2, 5, 6, 7, 3)).astype(np.float32) / 4
  ratio = 0.25
  mask = background_debias.motion_mask(tf.constant(clips), ratio).numpy()
  still = np.sort(clips, axis=1)[:, (5 - 1) // 2][:, None]
  distance = np.abs(clips - still).sum(-1)
  smooth = tf.nn.avg_pool2d(distance.reshape(-1, 6, 7, 1), 3, 1,
                            'SAME').numpy().reshape(-1, 42)
  keep = int(round(ratio * 42))
  threshold = np.sort(smooth, axis=1)[:, -keep][:, None]
  expected = (smooth >= threshold - 1e-6) & (smooth > 1e-6)
  np.testing.assert_array_equal(mask.reshape(-1, 42) > 0, expected)


def test_motion_mask_follows_the_square_frame_by_frame():
  views, square, _ = _batch()
  ratio = 8 / (S * S)
  mask = background_debias.motion_mask(views, ratio).numpy()[..., 0]
  assert mask.shape == (4, T, S, S)
  for v in range(4):
    for t in range(T):
      # The 8+ pixels farthest from the still background are the square's.
      assert mask[v, t].sum() >= 8
      assert (mask[v, t] <= square[v, t]).all()
  still = tf.ones([1, T, S, S, 3]) * 0.5
  assert background_debias.motion_mask(still, ratio).numpy().sum() == 0


def test_fame_puts_the_foreground_on_another_videos_background():
  views, square, seeds = _batch()
  config = video_data.BackgroundConfig(method='fame', foreground_ratio=0.12)
  out = background_debias.debias(views, views, seeds, config)[1].numpy()
  mask = background_debias.motion_mask(views, 0.12).numpy()[..., 0]
  partners = background_debias._partners(seeds).numpy()  # pylint: disable=protected-access
  assert sorted(partners) == [0, 1, 2, 3] and (partners != range(4)).all()
  for v in range(4):
    keep = mask[v].astype(bool)
    assert (keep >= square[v]).all()  # the whole square is kept
    np.testing.assert_array_equal(out[v][keep], views.numpy()[v][keep])
    # Elsewhere the partner's still background, without its square.
    np.testing.assert_allclose(out[v][~keep], 0.1 * (partners[v] + 1))


def test_scrambled_background_is_flipped_with_channels_rotated():
  views, _, seeds = _batch()
  # A background that differs by channel and position: a colour ramp.
  ramp = np.linspace(0, 0.5, S, dtype=np.float32)
  views = views.numpy()
  views[..., 0] += ramp[None, None, :, None]
  views[..., 2] += 0.3
  views = tf.constant(views)
  config = video_data.BackgroundConfig(method='fame', foreground_ratio=0.12)
  plain = background_debias.debias(views, views, seeds, config)[1].numpy()
  scrambled = background_debias.debias(
      views, views, seeds, config.replace(scramble_background=True))[1].numpy()
  mask = background_debias.motion_mask(views, 0.12).numpy()[..., 0] > 0
  partners = background_debias._partners(seeds).numpy()  # pylint: disable=protected-access
  for v in range(4):
    still = background_debias.still_background(views).numpy()[partners[v], 0]
    want = np.roll(still[::-1, ::-1], 1, axis=-1)
    for t in range(T):
      np.testing.assert_allclose(scrambled[v, t][~mask[v, t]],
                                 want[~mask[v, t]], atol=1e-6)
      np.testing.assert_allclose(plain[v, t][~mask[v, t]],
                                 still[~mask[v, t]], atol=1e-6)


def test_be_blends_one_frame_with_a_weight_in_range():
  views, _, seeds = _batch()
  low, high = 0.2, 0.4
  for source in ('same_video', 'other_video'):
    config = video_data.BackgroundConfig(method='be', be_source=source,
                                         be_weight_range=(low, high))
    out = background_debias.debias(views, views, seeds, config)[1].numpy()
    partners = (background_debias._partners(seeds).numpy()  # pylint: disable=protected-access
                if source == 'other_video' else np.arange(4))
    x = views.numpy()
    for v in range(4):
      # Find the frame and weight that explain the output exactly.
      fits = []
      for k in range(T):
        still = x[partners[v], k]
        denominator = still - x[v]
        usable = np.abs(denominator) > 1e-3
        weights = (out[v] - x[v])[usable] / denominator[usable]
        if np.allclose(weights, weights[0], atol=1e-4):
          fits.append(weights[0])
      assert fits and low - 1e-4 <= fits[0] <= high + 1e-4, (source, v, fits)


def test_first_views_prob_and_seeds():
  views, _, seeds = _batch()
  first = views * 0.5
  fame = video_data.BackgroundConfig(method='fame')
  a = background_debias.debias(first, views, seeds, fame)[1].numpy()
  b = background_debias.debias(first, views, seeds, fame)[1].numpy()
  np.testing.assert_array_equal(a, b)  # same seeds, same batch
  kept, _ = background_debias.debias(first, views, seeds, fame)
  np.testing.assert_array_equal(kept.numpy(), first.numpy())
  _, _, other = _batch(seed=5)
  be = video_data.BackgroundConfig(method='be')
  assert not np.allclose(  # other seeds, other weights
      background_debias.debias(first, views, seeds, be)[1].numpy(),
      background_debias.debias(first, views, other, be)[1].numpy())
  off = fame.replace(prob=0.0)
  np.testing.assert_array_equal(
      background_debias.debias(first, views, seeds, off)[1].numpy(),
      views.numpy())
  half = be.replace(prob=0.5)  # (FAME with a tiled batch may pick a copy)
  seeds_64 = tf.random.experimental.stateless_split([9, 9], 64)
  big = tf.tile(views, [16, 1, 1, 1, 1])
  changed = np.any(background_debias.debias(big, big, seeds_64, half)[1].numpy()
                   != big.numpy(), axis=(1, 2, 3, 4))
  assert 16 <= changed.sum() <= 48  # about half of 64 (p < 1e-4 outside)
  one = background_debias.debias(views[:1], views[:1], seeds[:1], fame)[1]
  np.testing.assert_array_equal(one.numpy(), views.numpy()[:1])  # no partner


def test_both_views_each_get_their_own_draw():
  views, _, seeds = _batch(b=8)
  fame = video_data.BackgroundConfig(method='fame', views='both',
                                     foreground_ratio=0.12)
  new_1, new_2 = background_debias.debias(views, views, seeds, fame)
  second_only = background_debias.debias(views, views, seeds,
                                         fame.replace(views='second'))
  np.testing.assert_array_equal(new_2.numpy(), second_only[1].numpy())
  assert not np.allclose(new_1.numpy(), views.numpy())
  # Each view's moving region is its own; the backgrounds are two other
  # videos' (constant per video here), chosen independently.
  mask = background_debias.motion_mask(views, 0.12).numpy()[..., 0]
  backgrounds = []
  for out in (new_1.numpy(), new_2.numpy()):
    corner = [out[v, 0][~mask[v, 0].astype(bool)].min() for v in range(8)]
    backgrounds.append(np.round(np.array(corner) / 0.1) - 1)
  assert (backgrounds[0] != np.arange(8)).all()
  assert (backgrounds[1] != np.arange(8)).all()
  assert (backgrounds[0] != backgrounds[1]).any()


def test_config_is_checked():
  config = video_data.VideoDataConfig(input_path='x', global_batch_size=2)
  config.validate()
  for field, value in (('method', 'mixup'), ('prob', 1.5),
                       ('foreground_ratio', 0.0), ('be_source', 'batch'),
                       ('be_weight_range', (0.6, 0.2)), ('views', 'first')):
    bad = config.replace(background={field: value})
    with pytest.raises(base.ConfigError, match=f'background.{field}'):
      bad.validate()
  with pytest.raises(base.ConfigError, match='background.method'):
    config.replace(mode='train', background={'method': 'fame'}).validate()


@pytest.fixture(scope='module')
def records(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('bg') / 'videos.tfrecord')
  videos = [([video_records.textured_frame(48, 64, seed=10 * v + k)
              for k in range(12)], v % 3) for v in range(6)]
  return video_records.write_records(path, videos)


def _take(path, augment_on, method):
  config = video_data.VideoDataConfig(
      input_path=path, global_batch_size=3, num_frames=4, frame_stride=2,
      crop_size=32, seed=5, shuffle_buffer_size=4, augment_on=augment_on,
      background={'method': method})
  return {k: tf.constant(v.numpy()) for k, v in
          next(iter(pipelines.build_dataset(config))).items()}


@pytest.mark.parametrize('method', ['fame', 'be'])
def test_pipeline_host_and_device_give_the_same_views(records, method):
  plain = _take(records, 'host', 'none')
  host = _take(records, 'host', method)
  assert set(host) == {'image', 'label'}
  first, second = np.split(host['image'].numpy(), 2)
  plain_first, plain_second = np.split(plain['image'].numpy(), 2)
  np.testing.assert_array_equal(first, plain_first)
  assert not np.allclose(second, plain_second)
  device = _take(records, 'device', method)
  assert device[pipelines.DEBIAS_SEED].shape == (3, 2)
  task = task_factory.get_task(small_pretrain_config(
      train_data={'augment_on': 'device', 'background': {'method': method}}))
  prepared = task.device_preprocess(device)
  assert set(prepared) == {'image', 'label', 'windows_shrunk'}
  np.testing.assert_allclose(prepared['image'].numpy(), host['image'].numpy(),
                             atol=1e-4)
