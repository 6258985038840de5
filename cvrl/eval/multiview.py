"""Multi-view evaluation: fold the views of each video into the batch, and
average the views' softmax (paper 4.1: 10 clips x 3 crops a video). Called
by the classification task and feature export.
"""

import tensorflow as tf


def average_view_probabilities(logits: tf.Tensor, num_views: int) -> tf.Tensor:
  """Softmax of every view, averaged over the views of each video.

  Args:
    logits: [B * num_views, C], the views of a video consecutive (as the test
      pipeline lays them out: clip-major, crops within a clip).
    num_views: views per video (clips x crops, 30 in the paper).
  Returns:
    [B, C] class probabilities per video (each row sums to 1).
  """
  probs = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
  probs = tf.reshape(probs, [-1, num_views, probs.shape[-1]])
  return tf.reduce_mean(probs, axis=1)


def fold_views(images: tf.Tensor):
  """[B, V, T, H, W, 3] -> ([B * V, T, H, W, 3], V); rank 5 passes (V=1)."""
  if images.shape.rank == 5:
    return images, 1
  num_views = images.shape[1]
  return tf.reshape(images, [-1] + images.shape[2:].as_list()), num_views
