"""Temporally consistent spatial augmentation (Algorithm 1) and its pieces."""

import numpy as np
import pytest
from scipy import ndimage
import tensorflow as tf

from cvrl.configs import video_data
from cvrl.data import spatial_augment as sa
from tests import video_records

PAPER_VIEW = video_data.ViewAugmentationConfig()
# Every random step switched on, so that any inconsistency would show.
ALWAYS = video_data.ViewAugmentationConfig(flip_prob=1.0, color_jitter_prob=1.0,
                                           grayscale_prob=0.0, blur_prob=1.0,
                                           solarize_prob=1.0)


def _encoded_clip(image, num_frames=8, fmt='jpeg'):
  return tf.constant([video_records.encode(image, fmt)] * num_frames)


def _seed(i):
  return tf.constant([3, i], tf.int64)


@pytest.mark.parametrize('use_xla', [True, False])
def test_identical_frames_stay_identical(use_xla):
  clip = _encoded_clip(video_records.textured_frame())
  for i in range(6):
    out = sa.augmented(sa.consistent_view(clip, _seed(i), ALWAYS, 32),
                       use_xla=use_xla).numpy()
    assert out.shape == (8, 32, 32, 3)
    assert np.ptp(out, axis=0).max() == 0.0, f'seed {i}: frames differ'
  for i in range(6):  # the paper's probabilities, greyscale included
    out = sa.augmented(sa.consistent_view(clip, _seed(i), PAPER_VIEW,
                                          32)).numpy()
    assert np.ptp(out, axis=0).max() == 0.0


def test_per_frame_ablation_makes_frames_differ():
  clip = _encoded_clip(video_records.textured_frame())
  out = sa.augmented(sa.per_frame_view(clip, _seed(0), PAPER_VIEW, 32)).numpy()
  per_frame_diff = np.abs(out[1:] - out[:1]).mean(axis=(1, 2, 3))
  assert np.all(per_frame_diff > 0.01)


def test_same_seed_same_clip_other_seed_differs():
  clip = _encoded_clip(video_records.textured_frame())

  def view(seed):
    return sa.augmented(sa.consistent_view(clip, _seed(seed), PAPER_VIEW,
                                           32)).numpy()
  a = view(1)
  np.testing.assert_array_equal(a, view(1))
  assert np.abs(a - view(2)).mean() > 0.01


def test_xla_and_plain_graph_agree():
  clip = _encoded_clip(video_records.textured_frame())
  for i in range(4):
    prepared = sa.consistent_view(clip, _seed(i), ALWAYS, 32)
    a = sa.augmented(prepared, use_xla=True).numpy()
    b = sa.augmented(prepared, use_xla=False).numpy()
    np.testing.assert_allclose(a, b, atol=2e-5)


def test_crop_windows_follow_area_and_aspect_ranges():
  areas, aspects = [], []
  for i in range(400):
    y, x, h, w = sa.sample_crop_window(_seed(i), 256, 340, (0.3, 1.0),
                                       (0.5, 2.0)).numpy()
    assert 0 <= y and y + h <= 256 and 0 <= x and x + w <= 340
    areas.append(h * w / (256 * 340))
    aspects.append(w / h)
  areas, aspects = np.array(areas), np.array(aspects)
  assert areas.min() >= 0.29 and areas.max() <= 1.0
  assert aspects.min() >= 0.49 and aspects.max() <= 2.05
  assert areas.max() > 0.8 and areas.min() < 0.4  # the whole range is used
  assert aspects.min() < 0.6 and aspects.max() > 1.6


def test_greyscale_jpeg_and_png_frames_go_through():
  grey = tf.io.encode_jpeg(video_records.textured_frame()[:, :, :1]).numpy()
  out = sa.augmented(sa.consistent_view(tf.constant([grey] * 4), _seed(0),
                                        PAPER_VIEW, 32))
  assert out.shape == (4, 32, 32, 3)
  png = _encoded_clip(video_records.textured_frame(), 4, fmt='png')
  out = sa.augmented(sa.consistent_view(png, _seed(0), PAPER_VIEW, 32))
  assert out.shape == (4, 32, 32, 3)


def test_gaussian_blur_matches_scipy():
  rng = np.random.default_rng(0)
  frames = rng.uniform(size=(2, 40, 40, 3)).astype(np.float32)
  ours = sa.gaussian_blur(tf.constant(frames), 1.3, 22).numpy()
  # scipy's 'mirror' is reflection without repeating the edge, like REFLECT.
  ref = ndimage.gaussian_filter(frames, sigma=(0, 1.3, 1.3, 0), mode='mirror',
                                truncate=11 / 1.3)
  np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_colour_ops_with_known_parameters():
  frames = tf.constant(np.full((2, 4, 4, 3), [0.2, 0.4, 0.6], np.float32))
  params = sa.draw_clip_params(_seed(0), PAPER_VIEW, (4, 4))._replace(
      brightness=tf.constant(1.5), contrast=tf.constant(1.0),
      saturation=tf.constant(1.0), hue=tf.constant(0.0),
      order=tf.constant([0, 1, 2, 3]))
  out = sa.color_jitter(frames, params).numpy()
  np.testing.assert_allclose(out[0, 0, 0], [0.3, 0.6, 0.9], atol=1e-5)
  params = params._replace(brightness=tf.constant(1.0),
                           saturation=tf.constant(0.0))
  grey = sa.color_jitter(frames, params).numpy()[0, 0, 0]
  assert np.ptp(grey) < 1e-5  # saturation 0 -> grey


@pytest.mark.parametrize('order', [(0, 1, 2, 3), (1, 0, 2, 3), (2, 3, 1, 0)])
def test_colour_ops_follow_the_drawn_order(order):
  """Brightness and contrast do not commute once values are clipped to [0,
  1]: each order's result is numpy's chain in that order (saturation 1 and
  hue 0 leave the values), eagerly and under XLA."""
  rng = np.random.default_rng(sum(order))
  frames = rng.uniform(0, 1, size=(3, 4, 5, 3)).astype(np.float32)
  params = sa.draw_clip_params(_seed(0), PAPER_VIEW, (4, 5))._replace(
      brightness=tf.constant(1.6), contrast=tf.constant(1.8),
      saturation=tf.constant(1.0), hue=tf.constant(0.0),
      order=tf.constant(order, tf.int32))
  want = frames
  for op in order:
    if op == 0:
      want = want * 1.6
    elif op == 1:
      mean = want.mean(axis=(0, 1, 2), keepdims=True)
      want = (want - mean) * 1.8 + mean
    want = np.clip(want, 0.0, 1.0)
  np.testing.assert_allclose(sa.color_jitter(tf.constant(frames), params),
                             want, atol=2e-5)
  compiled = tf.function(sa.color_jitter, jit_compile=True)
  np.testing.assert_allclose(compiled(tf.constant(frames), params), want,
                             atol=2e-5)


def test_flip_mirrors_the_image():
  frame = video_records.textured_frame(32, 32)
  clip = tf.constant([video_records.encode(frame, 'png')] * 2)
  view = video_data.ViewAugmentationConfig(
      crop_area_range=(1.0, 1.0), crop_aspect_range=(1.0, 1.0), flip_prob=1.0,
      color_jitter_prob=0.0, grayscale_prob=0.0, blur_prob=0.0)
  out = sa.augmented(sa.consistent_view(clip, _seed(0), view, 32)).numpy()
  np.testing.assert_allclose(out[0], frame[:, ::-1] / 255.0, atol=1e-6)


def test_augment_clip_applies_the_given_parameters_to_every_frame():
  """The typed per-clip parameters, set by hand: a window and a flip."""
  frames = [video_records.textured_frame(48, 64, seed=s) for s in range(3)]
  clip = tf.constant([video_records.encode(f, 'png') for f in frames])
  off = tf.constant(False)
  params = sa.ClipParams(
      window=tf.constant([8, 16, 32, 32]), flip=tf.constant(True), jitter=off,
      brightness=tf.constant(1.0), contrast=tf.constant(1.0),
      saturation=tf.constant(1.0), hue=tf.constant(0.0),
      order=tf.range(4), grayscale=off, blur=off, sigma=tf.constant(1.0),
      solarize=off)
  out = sa.augment_clip(clip, params, 32).numpy()
  for f, frame in enumerate(frames):
    np.testing.assert_allclose(out[f], frame[8:40, 16:48][:, ::-1] / 255.0,
                               atol=1e-6)


def test_ablation_views():
  frame = video_records.textured_frame(40, 64)
  clip = _encoded_clip(frame, 3)
  centre = sa.augmented(sa.centre_crop_view(clip, _seed(0), PAPER_VIEW,
                                            32)).numpy()
  # The centred 40 x 40 window of the 40 x 64 JPEG (x from 12), decoded as
  # the decoding phase does it, resized to 32
  assert frame.shape == (40, 64, 3)
  window = tf.image.decode_and_crop_jpeg(clip[0], [0, 12, 40, 40])
  # (in float: nothing is rounded between the resize and the pixel work)
  want = tf.image.resize(tf.cast(window, tf.float32)[None], [32, 32]).numpy()
  np.testing.assert_allclose(centre[0], want[0] / 255.0, atol=1e-5)
  assert np.ptp(centre, axis=0).max() == 0.0
  frames = sa.augmented(sa.per_frame_view(clip, _seed(0), ALWAYS, 32)).numpy()
  assert np.abs(frames[1:] - frames[:1]).mean(axis=(1, 2, 3)).min() > 0.01
