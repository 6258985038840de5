"""AVA keyframe records -> batches for the action detector.

Phases, as the classification pipelines: parse (`parse_keyframe`) -> sample
the clip centred on the keyframe -> decode -> crop / resize / flip with the
boxes following (one stateless draw per clip, every frame the same) ->
boxes padded to `max_boxes` with a mask -> batch.

Boxes inside the pipeline and the model are (ymin, xmin, ymax, xmax),
normalised to the frame (TensorFlow's order); the records and the AVA CSVs
hold (x1, y1, x2, y2). Action id a (AVA counts from 1) is class a - 1.

Every example carries `key`: its keyframe key 'video_id,%04d' as int32
bytes [KEY_BYTES] (accelerators take no strings); `key_text` turns it back.
"""

from typing import Dict, Optional

import numpy as np
import tensorflow as tf

from cvrl.configs import detection as detection_cfg
from cvrl.data import features
from cvrl.data import pipelines
from cvrl.data import video_sources

KEY_BYTES = 64


def _box_keys(prefix):
  return [f'{prefix}/{c}' for c in features.BOX_COORDINATES]


def parse_keyframe(serialized: tf.Tensor) -> Dict[str, tf.Tensor]:
  """A `convert_ava` record -> frames, keyframe index, boxes, labels."""
  floats = {k: tf.io.VarLenFeature(tf.float32) for k in
            _box_keys(features.BOX_PREFIX) + _box_keys(features.PROPOSAL_PREFIX)
            + [features.PROPOSAL_SCORE_KEY]}
  ints = {k: tf.io.VarLenFeature(tf.int64) for k in
          (features.BOX_LABEL_INDEX_KEY, features.BOX_LABEL_BOX_KEY)}
  context, sequence = tf.io.parse_single_sequence_example(
      serialized,
      context_features={
          features.CLIP_ID_KEY: tf.io.FixedLenFeature([], tf.string, ''),
          features.KEYFRAME_INDEX_KEY: tf.io.FixedLenFeature([], tf.int64),
          **floats, **ints},
      sequence_features={
          features.IMAGE_KEY: tf.io.FixedLenSequenceFeature([], tf.string)})
  dense = {k: tf.sparse.to_dense(context[k]) for k in list(floats) + list(ints)}

  def boxes(prefix):
    xmin, ymin, xmax, ymax = (dense[k] for k in _box_keys(prefix))
    return tf.stack([ymin, xmin, ymax, xmax], axis=-1)
  return {
      'frames': sequence[features.IMAGE_KEY],
      'keyframe_index': tf.cast(context[features.KEYFRAME_INDEX_KEY],
                                tf.int32),
      'id': context[features.CLIP_ID_KEY],
      'gt_boxes': boxes(features.BOX_PREFIX),
      'label_ids': tf.cast(dense[features.BOX_LABEL_INDEX_KEY], tf.int32),
      'label_boxes': tf.cast(dense[features.BOX_LABEL_BOX_KEY], tf.int32),
      'proposals': boxes(features.PROPOSAL_PREFIX),
      'proposal_scores': dense[features.PROPOSAL_SCORE_KEY],
  }


def multi_hot(example, num_classes: int) -> tf.Tensor:
  """[num boxes, num_classes] 0/1 from the flat (action, box) pairs; fails
  naming the keyframe when an action id is outside [1, num_classes]."""
  ids, box = example['label_ids'], example['label_boxes']
  message = tf.strings.format(
      'keyframe {}: action ids {} outside [1, num_classes={}] (the records '
      'were converted with another label map than the experiment\'s '
      'num_classes)', [example['id'], ids, num_classes])
  check = tf.debugging.Assert(
      tf.reduce_all((ids >= 1) & (ids <= num_classes)), [message])
  with tf.control_dependencies([check]):
    pairs = tf.stack([box, ids - 1], axis=1)
  shape = [tf.shape(example['gt_boxes'])[0], num_classes]
  return tf.minimum(tf.scatter_nd(pairs, tf.ones_like(ids, tf.float32),
                                  shape), 1.0)


def clip_indices(keyframe_index, length, num_frames: int, stride: int):
  """Frames of the clip centred on the keyframe, clamped to the record."""
  offsets = (tf.range(num_frames) - num_frames // 2) * stride
  return tf.clip_by_value(keyframe_index + offsets, 0, length - 1)


def crop_window(seed, frame_hw,
                config: detection_cfg.DetectionDataConfig) -> tf.Tensor:
  """[ymin, xmin, ymax, xmax] (normalised) of the training crop, or the
  whole frame when testing.

  PySlowFast's AVA training transform, as one window: scale the
  [H, W] frame so its short side is s ~ U(short_side_range), then take a
  frame_size crop at a uniform position. Both sides are scaled by the same
  factor, so `crop_and_resize` of this window to frame_size keeps the
  aspect of what it shows (the factor is raised, if need be, until the
  crop fits inside the scaled frame).
  """
  if not config.is_training:
    return tf.constant([0.0, 0.0, 1.0, 1.0])
  height, width = tf.unstack(tf.cast(frame_hw, tf.float32))
  crop_h, crop_w = (float(s) for s in config.frame_size)
  low, high = (float(s) for s in config.short_side_range)
  draws = tf.random.stateless_uniform([3], seed)
  scale = (low + (high - low) * draws[0]) / tf.minimum(height, width)
  scale = tf.maximum(scale, tf.maximum(crop_h / height, crop_w / width))
  scaled_h, scaled_w = height * scale, width * scale
  top = draws[1] * (scaled_h - crop_h)
  left = draws[2] * (scaled_w - crop_w)
  return tf.stack([top / scaled_h, left / scaled_w,
                   (top + crop_h) / scaled_h, (left + crop_w) / scaled_w])


def transform_boxes(boxes, window, flip) -> tuple:
  """Boxes in the frame -> in the crop window (clipped), mirrored if flip;
  returns (boxes, valid) where a box that leaves the crop is invalid."""
  offset = tf.stack([window[0], window[1], window[0], window[1]])
  size = tf.stack([window[2] - window[0], window[3] - window[1]] * 2)
  moved = tf.clip_by_value((boxes - offset) / size, 0.0, 1.0)
  moved = tf.cond(flip, lambda: tf.stack(
      [moved[:, 0], 1 - moved[:, 3], moved[:, 2], 1 - moved[:, 1]], axis=1),
                  lambda: moved)
  valid = ((moved[:, 2] - moved[:, 0]) > 1e-3) & (
      (moved[:, 3] - moved[:, 1]) > 1e-3)
  return moved, valid


def box_iou(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
  """[N, 4] x [M, 4] (ymin, xmin, ymax, xmax) -> [N, M] IoU."""
  top = tf.maximum(a[:, None, 0], b[None, :, 0])
  left = tf.maximum(a[:, None, 1], b[None, :, 1])
  bottom = tf.minimum(a[:, None, 2], b[None, :, 2])
  right = tf.minimum(a[:, None, 3], b[None, :, 3])
  inter = tf.maximum(bottom - top, 0.0) * tf.maximum(right - left, 0.0)
  area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
  area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
  return tf.math.divide_no_nan(inter, area_a[:, None] + area_b[None, :] -
                               inter)


def proposal_labels(proposals, gt_boxes, gt_labels,
                    threshold: float = 0.5) -> tf.Tensor:
  """Each proposal takes the actions of the ground-truth box it overlaps
  most, if by IoU >= threshold (else none): what makes the validation loss
  on proposals mean something."""
  # A zero-overlap, no-action column: a keyframe without ground truth
  # (or a proposal that matches nothing) gets no actions.
  overlaps = tf.concat([box_iou(proposals, gt_boxes),
                        tf.zeros([tf.shape(proposals)[0], 1])], axis=1)
  best = tf.argmax(overlaps, axis=1, output_type=tf.int32)
  matched = tf.reduce_max(overlaps, axis=1) >= threshold
  no_action = tf.zeros([1, tf.shape(gt_labels)[1]])
  labels = tf.gather(tf.concat([gt_labels, no_action], axis=0), best)
  return labels * tf.cast(matched, tf.float32)[:, None]


def _pad(x, size: int):
  """First `size` rows of x, zero-padded to exactly `size`."""
  x = x[:size]
  pad = [[0, size - tf.shape(x)[0]]] + [[0, 0]] * (x.shape.rank - 1)
  return tf.ensure_shape(tf.pad(x, pad), [size] + x.shape[1:].as_list())


def key_bytes(key: tf.Tensor) -> tf.Tensor:
  """A string -> int32 [KEY_BYTES] of its bytes, zero-padded."""
  padded = tf.strings.substr(
      tf.strings.join([key, tf.constant('\0' * KEY_BYTES)]), 0, KEY_BYTES)
  return tf.cast(tf.reshape(tf.io.decode_raw(padded, tf.uint8),
                            [KEY_BYTES]), tf.int32)


def key_text(codes) -> str:
  """Inverse of key_bytes, on the host."""
  return bytes(np.asarray(codes, np.uint8).tolist()).rstrip(b'\0').decode()


def process_keyframe(example, seed, config: detection_cfg.DetectionDataConfig
                     ) -> Dict[str, tf.Tensor]:
  """One keyframe -> image [T, H, W, 3] in [0, 1], boxes, masks, labels."""
  crop_seed, flip_seed = tf.unstack(
      tf.random.experimental.stateless_split(seed, 2))
  frames = example['frames']
  indices = clip_indices(example['keyframe_index'], tf.shape(frames)[0],
                         config.num_frames, config.frame_stride)
  images = tf.map_fn(lambda f: tf.io.decode_jpeg(f, channels=3),
                     tf.gather(frames, indices), fn_output_signature=tf.uint8)
  window = crop_window(crop_seed, tf.shape(images)[1:3], config)
  flip = (tf.random.stateless_uniform([], flip_seed) < config.flip_prob
          if config.is_training else tf.constant(False))
  # One crop box for every frame: the same crop of the clip.
  image = tf.image.crop_and_resize(
      tf.cast(images, tf.float32), tf.repeat(window[None], config.num_frames,
                                             axis=0),
      tf.range(config.num_frames), list(config.frame_size))
  image = tf.cond(flip, lambda: tf.reverse(image, axis=[2]), lambda: image)
  image = tf.clip_by_value(image / 255.0, 0.0, 1.0)
  if config.zero_centering:
    image = image * 2.0 - 1.0
  labels = multi_hot(example, config.num_classes)
  gt_boxes, gt_valid = transform_boxes(example['gt_boxes'], window, flip)
  out = {'image': tf.cast(image, 'float32' if config.dtype == 'auto'
                          else config.dtype),
         'key': key_bytes(example['id'])}
  if config.use_proposals:
    keep = example['proposal_scores'] >= config.proposal_score_threshold
    boxes, valid = transform_boxes(
        tf.boolean_mask(example['proposals'], keep), window, flip)
    scores = tf.boolean_mask(example['proposal_scores'], keep)
    box_labels = proposal_labels(boxes, gt_boxes, labels)
    out.update(gt_boxes=_pad(gt_boxes, config.max_boxes),
               gt_labels=_pad(labels, config.max_boxes),
               gt_mask=_pad(tf.cast(gt_valid, tf.float32), config.max_boxes),
               proposal_scores=_pad(scores, config.max_boxes))
  else:
    boxes, valid, box_labels = gt_boxes, gt_valid, labels
  # Every box cut by max_boxes is counted: the model's boxes, and in
  # evaluation also the ground truth the evaluator would not see.
  overflow = [boxes] + ([gt_boxes] if config.use_proposals else [])
  out.update(boxes=_pad(boxes, config.max_boxes),
             box_mask=_pad(tf.cast(valid, tf.float32), config.max_boxes),
             labels=_pad(box_labels, config.max_boxes),
             boxes_dropped=tf.add_n([
                 tf.maximum(0, tf.shape(b)[0] - config.max_boxes)
                 for b in overflow]))
  return out


def _pad_batch(batch: Dict[str, tf.Tensor], size: int):
  return {k: _pad(v, size) for k, v in batch.items()}


def build_dataset(config: detection_cfg.DetectionDataConfig,
                  input_context: Optional[tf.distribute.InputContext] = None
                  ) -> tf.data.Dataset:
  """Batches of `process_keyframe` (per-replica batch size)."""
  batch_size = (input_context.get_per_replica_batch_size(
      config.global_batch_size) if input_context else config.global_batch_size)
  pipeline_id = input_context.input_pipeline_id if input_context else 0
  source = video_sources.TFRecordSource(
      config.input_path, shuffle=config.is_training, seed=config.seed,
      cycle_length=config.cycle_length,
      shuffle_buffer_size=(config.shuffle_buffer_size if config.is_training
                           else 0), input_context=input_context)
  # A resumed job (start_step k) starts where batch k starts; the seeds
  # follow the stream position, so its batches are an uninterrupted job's.
  num_pipelines = input_context.num_input_pipelines if input_context else 1
  first = config.start_step * (config.global_batch_size // num_pipelines)
  dataset = source.stream(first, repeat=config.is_training and config.repeat,
                          parse=parse_keyframe).enumerate(start=first)
  dataset = dataset.map(
      lambda position, example: process_keyframe(
          example, pipelines.example_seed(config.seed, pipeline_id,
                                          position), config),
      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  dataset = dataset.batch(batch_size, drop_remainder=config.drop_remainder)
  if not config.drop_remainder:
    # The last batch is padded with empty keyframes (no boxes, masks 0):
    # every batch has the same static size, so every replica gets examples
    # (an empty per-replica batch crashes TF's CPU Conv3D) and TPUs compile
    # one program. Padding adds no detection and no ground truth.
    dataset = dataset.map(lambda b: _pad_batch(b, batch_size))
    # And whole padding batches, so the replicas this pipeline feeds get
    # one batch each at every step (else the last real batch is lost).
    replicas = (input_context.num_replicas_in_sync //
                input_context.num_input_pipelines if input_context else 1)
    if replicas > 1:
      empty = tf.data.Dataset.from_tensors(tf.nest.map_structure(
          lambda spec: tf.zeros(spec.shape, spec.dtype),
          dataset.element_spec)).repeat(replicas - 1)
      dataset = dataset.concatenate(empty).batch(
          replicas, drop_remainder=True).unbatch()
  options = tf.data.Options()
  options.deterministic = True
  return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
