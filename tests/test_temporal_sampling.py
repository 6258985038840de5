"""Temporal sampling: exact frame indices and the gap distributions (Fig. 3)."""

import numpy as np
import pytest
from scipy import stats
import tensorflow as tf

from cvrl.data import temporal_sampling as ts

SHAPES = [('decreasing', 1.0), ('decreasing', 0.5), ('decreasing', 2.0),
          ('uniform', 1.0), ('increasing', 1.0), ('increasing', 2.0)]


def _seed(i):
  return tf.constant([17, i], tf.int64)


@tf.function
def _draw_many(seeds, video_length, shape, power):
  return tf.map_fn(
      lambda s: tf.stack(ts.two_clip_starts(s, video_length, 16, 2, shape,
                                            power)),
      seeds, fn_output_signature=tf.int32)


def _draws(n, video_length, shape, power, base=0):
  seeds = tf.stack([tf.fill([n], tf.constant(base, tf.int64)),
                    tf.range(n, dtype=tf.int64)], axis=1)
  return _draw_many(seeds, video_length, shape, power).numpy()


def test_clip_indices_are_exact():
  for i in range(50):
    length = 40 + 7 * i
    s1, s2, gap = (int(v) for v in ts.two_clip_starts(_seed(i), length, 16, 2))
    idx1 = ts.clip_indices(s1, length, 16, 2).numpy()
    idx2 = ts.clip_indices(s2, length, 16, 2).numpy()
    assert s2 == s1 + gap and gap >= 0
    np.testing.assert_array_equal(idx1, s1 + 2 * np.arange(16))
    np.testing.assert_array_equal(idx2, idx1 + gap)
    assert idx2[-1] < length  # both clips fit, no wrap-around needed


@pytest.mark.parametrize('shape,power', SHAPES)
def test_gap_distribution_chi_square(shape, power):
  length = 31 + 20  # clip span 31, so gaps 0..20
  draws = _draws(6000, length, shape, power)
  gaps = draws[:, 2]
  assert gaps.min() >= 0 and gaps.max() <= 20
  observed = np.bincount(gaps, minlength=21)
  weights = ts.gap_weights(20, shape, power).numpy().astype(np.float64)
  expected = weights / weights.sum() * len(gaps)
  assert stats.chisquare(observed, expected).pvalue > 1e-3
  # ... and the test has power: the same draws reject a wrong shape.
  wrong = 'uniform' if shape != 'uniform' else 'decreasing'
  wrong_w = ts.gap_weights(20, wrong, 1.0).numpy().astype(np.float64)
  assert stats.chisquare(observed,
                         wrong_w / wrong_w.sum() * len(gaps)).pvalue < 1e-6


def test_decreasing_linear_is_the_papers_shape():
  weights = ts.gap_weights(9, 'decreasing', 1.0).numpy()
  # P(t) proportional to -t + c: equal steps down, still positive at the end.
  np.testing.assert_allclose(np.diff(weights), -1.0)
  assert weights[-1] > 0


def test_first_start_is_uniform_given_the_gap():
  draws = _draws(4000, 31 + 30, 'uniform', 1.0, base=5)
  start, gap = draws[:, 0], draws[:, 2]
  assert np.all(start <= 30 - gap)
  # Position of the start within its allowed range, (start + U) / (G - t + 1),
  # is uniform on [0, 1) when the start is uniform.
  rng = np.random.default_rng(0)
  rel = (start + rng.uniform(size=len(start))) / (30 - gap + 1)
  assert stats.kstest(rel, 'uniform').pvalue > 1e-3


def test_temporal_augmentation_off_gives_the_same_start():
  for i in range(20):
    s1, s2, gap = ts.same_starts(_seed(i), 100, 16, 2)
    assert int(gap) == 0 and int(s1) == int(s2)


def test_same_seed_same_starts_other_seed_differs():
  a = _draws(200, 300, 'decreasing', 1.0, base=1)
  np.testing.assert_array_equal(a, _draws(200, 300, 'decreasing', 1.0, base=1))
  assert not np.array_equal(a, _draws(200, 300, 'decreasing', 1.0, base=2))


@pytest.mark.parametrize('length', [1, 5, 30])
def test_short_videos_loop_or_pad(length):
  looped = ts.clip_indices(0, length, 16, 2, 'loop').numpy()
  padded = ts.clip_indices(0, length, 16, 2, 'pad').numpy()
  np.testing.assert_array_equal(looped, (2 * np.arange(16)) % length)
  np.testing.assert_array_equal(padded,
                                np.minimum(2 * np.arange(16), length - 1))
  np.testing.assert_array_equal(
      ts.clip_indices(3, length, 16, 2, 'loop').numpy(),
      (3 + 2 * np.arange(16)) % length)


@pytest.mark.parametrize('length', [5, 30])
def test_short_videos_get_two_independent_uniform_starts(length):
  """A video shorter than a clip span (31 frames) gets two starts drawn
  independently and uniformly over its frames, as the release does; with
  temporal augmentation off they are equal."""
  draws = _draws(3000, length, 'decreasing', 1.0, base=9)
  s1, s2, gap = draws[:, 0], draws[:, 1], draws[:, 2]
  np.testing.assert_array_equal(gap, s2 - s1)
  for starts in (s1, s2):
    assert starts.min() >= 0 and starts.max() <= length - 1
    observed = np.bincount(starts, minlength=length)
    assert stats.chisquare(observed).pvalue > 1e-3
  # Independent: the joint histogram is the product of the marginals.
  joint = np.histogram2d(s1, s2, bins=[length, length])[0]
  assert stats.chi2_contingency(joint + 1e-9)[1] > 1e-3
  assert abs(np.mean(s1 == s2) - 1 / length) < 0.03
  for i in range(20):
    a, b, g = (int(v) for v in ts.same_starts(_seed(i), length, 16, 2))
    assert a == b and g == 0 and 0 <= a < length
  one = ts.two_clip_starts(_seed(0), 1, 16, 2)
  assert [int(v) for v in one] == [0, 0, 0]


def test_random_order_swaps_half_the_pairs():
  swapped = 0
  for i in range(2000):
    first, second = (int(v) for v in ts.random_order(_seed(i), 3, 11))
    assert {first, second} == {3, 11}
    swapped += first == 11
  assert stats.binomtest(swapped, 2000, 0.5).pvalue > 1e-3
  again = [int(v) for v in ts.random_order(_seed(5), 3, 11)]
  assert again == [int(v) for v in ts.random_order(_seed(5), 3, 11)]


def test_evenly_spaced_test_clips():
  starts = ts.evenly_spaced_starts(250, 10, 32, 2).numpy()
  assert starts[0] == 0 and starts[-1] == 250 - 63
  assert np.all(np.diff(starts) >= 20) and len(starts) == 10
  np.testing.assert_array_equal(ts.evenly_spaced_starts(20, 10, 32, 2), 0)
