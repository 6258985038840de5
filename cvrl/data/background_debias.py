"""Batch-level augmentations against the static-background shortcut.

Contrastive video learning can tell videos apart by their backgrounds and
colours alone, and then keeps little of what moves (the scene bias of
Kinetics; `studies/learning_under_nuisance` measures it on synthetic data).
Two published remedies are here, each a pure function of the batch's second
views, the first views and per-example stateless seeds, so that the input
pipeline (`augment_on: host`) and the train step (`augment_on: device`) run
the same code:

  fame  "Motion-aware Contrastive Video Representation Learning via
        Foreground-background Merging", Ding et al., CVPR 2022: the moving
        region of a clip is pasted onto the background of another video of
        the batch, so the two views of a video share their foreground, not
        their background. Ours finds the moving region frame by frame
        against the clip's temporal median (FAME: one mask from frame
        differences) and uses the partner's temporal median as background.
  be    "Removing the Background by Adding the Background: Towards
        Background Robust Self-supervised Video Representation Learning",
        Wang et al., CVPR 2021: a frame of the clip is blended into every
        frame (x' = (1 - l) x + l x_k), a 'distracting' clip whose static
        content changed while its motion did not. `be_source: other_video`
        blends a frame of another video of the batch instead (a background
        mixing variant).

By default only the second view of each pair is changed (the first stays as
Algorithm 1 made it; `views: both` changes both, independently), with
probability `prob` per video. Partners are the batch rolled by
a shift in [1, B - 1] drawn from the first example's seed: never the video
itself, and a batch of one is left unchanged.

  views_1, views_2 = debias(views_1, views_2, seeds, config)
  # views_*: float [B, T, H, W, 3] in [0, 1]; seeds: int [B, 2]
"""

import functools

import tensorflow as tf

from cvrl.configs import video_data


def _uniform(seeds, salt, low=0.0, high=1.0, dtype=tf.float32):
  """One stateless draw per example, [B]."""
  return tf.map_fn(
      lambda s: tf.random.stateless_uniform(
          [], seed=tf.random.experimental.stateless_fold_in(s, salt),
          minval=low, maxval=high, dtype=dtype),
      seeds, fn_output_signature=dtype)


@functools.lru_cache(maxsize=None)
def _selection_network(size: int, rank: int):
  """(width, pairs): compare-exchange pairs (i, j), i < j, after which
  position `rank` of `size` values holds the rank-th smallest. Batcher's
  odd-even merge sort on width, the next power of two (the positions from
  `size` on hold +inf), keeping only the pairs that position depends on
  (53 of 63 for the median of 16)."""
  width = 1
  while width < size:
    width *= 2
  pairs = []
  block = 1
  while block < width:
    step = block
    while step >= 1:
      for j in range(step % block, width - step, 2 * step):
        for i in range(min(step, width - j - step)):
          if (i + j) // (2 * block) == (i + j + step) // (2 * block):
            pairs.append((i + j, i + j + step))
      step //= 2
    block *= 2
  needed, kept = {rank}, []
  for i, j in reversed(pairs):
    if i in needed or j in needed:
      kept.append((i, j))
      needed |= {i, j}
  return width, tuple(reversed(kept))


def _kth_smallest(values, rank: int) -> tf.Tensor:
  """Elementwise rank-th smallest of a list of same-shaped tensors, by a
  selection network of minima and maxima: exactly one of the input values
  (what tf.sort would give), vectorised over every pixel. tf.sort along a
  short axis of many columns is 8x slower on CPU, 50x under XLA."""
  width, pairs = _selection_network(len(values), rank)
  slots = list(values) + [None] * (width - len(values))  # None: +inf
  for i, j in pairs:
    if slots[j] is None:
      continue
    if slots[i] is None:
      slots[i], slots[j] = slots[j], None
    else:
      slots[i], slots[j] = (tf.minimum(slots[i], slots[j]),
                            tf.maximum(slots[i], slots[j]))
  return slots[rank]


def still_background(clips: tf.Tensor) -> tf.Tensor:
  """[B, 1, H, W, C]: each clip's per-pixel temporal median (the lower of
  the two middle values for an even T), i.e. its background wherever the
  foreground moves on within half the clip."""
  num_frames = clips.shape[1]
  return _kth_smallest(tf.unstack(clips, axis=1),
                       (num_frames - 1) // 2)[:, None]


def box_mean_3x3(images: tf.Tensor) -> tf.Tensor:
  """[N, H, W] -> the mean of each pixel's 3 x 3 neighbourhood inside the
  image: tf.nn.avg_pool2d(x[..., None], 3, 1, 'SAME') (which leaves the
  padding out of the count), to float rounding. As two separable sums of
  shifted slices: avg_pool2d on CPU is 8x slower for one channel."""
  height, width = images.shape[1], images.shape[2]
  padded = tf.pad(images, [[0, 0], [1, 1], [1, 1]])
  rows = padded[:, :-2] + padded[:, 1:-1] + padded[:, 2:]
  sums = rows[:, :, :-2] + rows[:, :, 1:-1] + rows[:, :, 2:]

  def counts(n):  # neighbours inside the image along one axis
    return tf.constant([min(i + 1, n - 1) - max(i - 1, 0) + 1
                        for i in range(n)], images.dtype)
  return sums / (counts(height)[:, None] * counts(width)[None, :])


def _distances(clips: tf.Tensor, still: tf.Tensor) -> tf.Tensor:
  """[B * T, H * W]: each pixel's distance to the still background, summed
  over colour and smoothed over 3 x 3 pixels."""
  height, width = clips.shape[2], clips.shape[3]
  distance = tf.reduce_sum(tf.abs(clips - still), axis=-1)  # [B, T, H, W]
  return tf.reshape(box_mean_3x3(tf.reshape(distance, [-1, height, width])),
                    [-1, height * width])


def _still_and_distances(clips: tf.Tensor):
  still = still_background(clips)
  return still, _distances(clips, still)


def _threshold(flat: tf.Tensor, foreground_ratio: float) -> tf.Tensor:
  """[N, 1]: the keep-th largest of each row, the smallest of an unsorted
  top-k (sorting the kept values costs a third more). Outside XLA: XLA's
  top-k on CPU took longer than all the rest of FAME together."""
  keep = max(1, int(round(foreground_ratio * flat.shape[-1])))
  return tf.reduce_min(tf.math.top_k(flat, keep, sorted=False).values,
                       axis=-1, keepdims=True)


def _mask(flat, threshold, clips) -> tf.Tensor:
  """Ties at the threshold are kept; a pixel that never moves is not."""
  mask = tf.cast((flat >= threshold) & (flat > 1e-6), clips.dtype)
  return tf.reshape(mask, tf.concat([tf.shape(clips)[:-1], [1]], 0))


# The elementwise work around the top-k, XLA-fused (2.2x faster on a CPU
# host than as separate TF ops: 72 -> 32 ms a batch of 64 x 16 x 32 x 32,
# the same values). Compiled once per shape; inlined into an XLA train step.
_still_and_distances_xla = tf.function(_still_and_distances, jit_compile=True)


def motion_mask(clips: tf.Tensor, foreground_ratio: float,
                still: tf.Tensor = None) -> tf.Tensor:
  """float {0, 1} [B, T, H, W, 1]: in every frame, the `foreground_ratio`
  of its pixels farthest from the clip's still background (what moves).

  FAME finds the foreground from frame differences; here each frame is
  compared with the clip's temporal median rather than with its neighbour,
  so that the mask follows the object frame by frame (a fast object's
  sweep would cover most of the frame, and a uniform object's inside does
  not change between neighbouring frames). `still`: the clips'
  `still_background`, if already computed. Distances are summed over colour
  and smoothed over 3 x 3 pixels; ties at the threshold are kept. A clip
  with no motion at all gets an empty mask.
  """
  if still is None:
    still = still_background(clips)
  flat = _distances(clips, still)
  return _mask(flat, _threshold(flat, foreground_ratio), clips)


def _merged(views, flat, threshold, background) -> tf.Tensor:
  """The views' moving pixels on `background` [B, 1, H, W, 3]."""
  mask = _mask(flat, threshold, views)
  return mask * views + (1.0 - mask) * background


_merged_xla = tf.function(_merged, jit_compile=True)


def _partners(seeds: tf.Tensor) -> tf.Tensor:
  """Indices [B]: the batch rolled by a drawn shift in [1, B - 1] (the
  identity for B = 1)."""
  batch = tf.shape(seeds)[0]
  shift = tf.random.stateless_uniform(
      [], seed=tf.random.experimental.stateless_fold_in(seeds[0], 17),
      minval=1, maxval=tf.maximum(batch, 2), dtype=tf.int32)
  shift = tf.where(batch > 1, shift, 0)
  return (tf.range(batch) + shift) % tf.maximum(batch, 1)


def fame(views_1, views_2, seeds, config: video_data.BackgroundConfig):
  """Second views with their moving region on a partner's background.

  The partner's background is its clip's temporal median, not the clip:
  pasted whole, the partner's own moving object would make the merged view
  look like the partner's positive too.
  """
  del views_1
  # The medians once: the partners' are among them.
  still, flat = _still_and_distances_xla(views_2)
  background = tf.gather(still, _partners(seeds))
  if config.scramble_background:
    # Turned upside down and its colour channels rotated: the partner's
    # own views would otherwise share this background and pull the merged
    # view towards them (a consistent wrong pair for every anchor).
    background = tf.roll(tf.reverse(background, axis=[2, 3]), 1, axis=4)
  return _merged_xla(views_2, flat, _threshold(flat, config.foreground_ratio),
                     background)


def be(views_1, views_2, seeds, config: video_data.BackgroundConfig):
  """Second views with a frame of a clip blended into every frame."""
  del views_1
  num_frames = views_2.shape[1]
  source = views_2
  if config.be_source == 'other_video':
    source = tf.gather(views_2, _partners(seeds))
  frame = _uniform(seeds, 1, 0, num_frames, tf.int32)
  still = tf.gather(source, frame, batch_dims=1)[:, None]  # [B, 1, H, W, 3]
  weight = _uniform(seeds, 2, *config.be_weight_range)[:, None, None, None,
                                                       None]
  return (1.0 - weight) * views_2 + weight * still


_METHODS = {'fame': fame, 'be': be}


def _second_only(views_1, views_2, seeds, config):
  """The configured method on the second views, each with prob `prob`."""
  dtype = views_2.dtype
  changed = _METHODS[config.method](tf.cast(views_1, tf.float32),
                                    tf.cast(views_2, tf.float32), seeds,
                                    config)
  applied = _uniform(seeds, 3) < config.prob
  return tf.cast(_applied_xla(changed, tf.cast(views_2, tf.float32), applied),
                 dtype)


def _applied(changed, views, applied) -> tf.Tensor:
  """`changed` where applied [B], else `views`; clipped to [0, 1]."""
  out = tf.where(applied[:, None, None, None, None], changed, views)
  return tf.clip_by_value(out, 0.0, 1.0)


_applied_xla = tf.function(_applied, jit_compile=True)


def debias(views_1: tf.Tensor, views_2: tf.Tensor, seeds: tf.Tensor,
           config: video_data.BackgroundConfig):
  """(views_1, views_2) after the configured method.

  views_*: float [B, T, H, W, 3] in [0, 1]; seeds: int64 [B, 2] (one per
  example, from the input pipeline). `views: second` changes the second
  views only; `both` also the first, with its own draws (other partners,
  frames, weights), so that neither view keeps the video's background.
  """
  if config.method == 'none':
    return views_1, views_2
  new_2 = _second_only(views_1, views_2, seeds, config)
  if config.views == 'second':
    return views_1, new_2
  first_seeds = tf.map_fn(
      lambda s: tf.random.experimental.stateless_fold_in(s, 41), seeds)
  return _second_only(views_2, views_1, first_seeds, config), new_2
