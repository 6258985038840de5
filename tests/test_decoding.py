"""Decoding phase: the crop-window decode equals decode-then-crop."""

import numpy as np
import tensorflow as tf

from cvrl.data import decoding
from tests import video_records


def test_cropped_decode_equals_full_decode_then_crop():
  clip = tf.constant([video_records.encode(video_records.textured_frame(
      256, 320, seed=s)) for s in range(4)])
  window = tf.constant([40, 72, 120, 160])
  cropped = decoding.decode_window(clip, window, tf.constant(True)).numpy()
  full = decoding.decode_window(clip, window, tf.constant(False)).numpy()
  whole = tf.io.decode_jpeg(clip[0], channels=3).numpy()
  np.testing.assert_array_equal(full[0], whole[40:160, 72:232])
  # libjpeg's cropped decode upsamples chroma without the pixels right of
  # the window, so only the window's last column may differ.
  np.testing.assert_array_equal(cropped[:, :, :-1], full[:, :, :-1])
