"""Evaluation views: SlowFast's 3-crop geometry."""

import numpy as np
import tensorflow as tf

from cvrl.data import eval_views


def test_three_crops_along_the_long_side():
  images = tf.reshape(tf.range(2 * 8 * 12 * 3, dtype=tf.float32),
                      [2, 8, 12, 3])
  crops = eval_views.three_crops(images, 8, 3).numpy()
  np.testing.assert_array_equal(crops[0], images[:, :, 0:8])
  np.testing.assert_array_equal(crops[1], images[:, :, 2:10])
  np.testing.assert_array_equal(crops[2], images[:, :, 4:12])
  tall = tf.transpose(images, [0, 2, 1, 3])
  crops = eval_views.three_crops(tall, 8, 3).numpy()
  np.testing.assert_array_equal(crops[2], tall[:, 4:12])
