"""tf.data input pipelines: pretraining (two views), training and testing.

Phases (DMVR style): source (by epoch, shuffled; `video_sources`) ->
enumerate -> per example [sample the clip starts (`temporal_sampling`) ->
gather the encoded frames -> decode the crop window and augment
(`spatial_augment`, Algorithm 1) or make the test views (`eval_views`)] ->
batch -> [background debiasing, off in the paper's recipes
(`background_debias`)] -> arrange views -> cast. The pretraining steps are
named and swappable (`PretrainSteps`): a Table 9 ablation is a different
step, not a flag.

Randomness is stateless and keyed by (config.seed, input pipeline id,
position of the example in this pipeline's stream, view). The same seed gives
the same batches, another seed other batches, and starting at step k
(`start_step`) gives exactly the batches an uninterrupted job sees after k
steps, because no random state is carried from one example to the next and
the stream's order is a pure function of (seed, epoch, position in epoch):
a restart jumps to its epoch and reads at most that epoch's earlier records.

  dataset = pipelines.build_dataset(config, input_context)
  # pretrain: {'image': [2B, T, S, S, 3] (views 1 then views 2), 'label': [B]}
  #   augment_on: device: {'image': uint8 [L] (the batch's windows, one
  #   buffer), 'view_offsets': [B, 2], 'view_params': [B, 2, 19], 'label'}
  #   -> device_views in the train step
  # train:    {'image': [B, T, S, S, 3], 'label': [B]}
  # test:     {'image': [B, clips * crops, T, S', S', 3], 'label': [B]}
"""

import dataclasses
from typing import Dict, Optional, Protocol, Tuple

import tensorflow as tf

from cvrl.configs import base
from cvrl.configs import video_data
from cvrl.data import background_debias
from cvrl.data import eval_views
from cvrl.data import spatial_augment
from cvrl.data import temporal_sampling as ts
from cvrl.data import video_sources
from cvrl.data import window_buffer

# Keeps seeds of different input pipelines apart.
_PIPELINE_SALT = 1_000_003
# Folded into an example's seed for its batch-level background debiasing.
_DEBIAS_SALT = 29
# Per-example seeds [B, 2] of the background debiasing, when it is on.
DEBIAS_SEED = 'debias_seed'
# Host mode, pretraining: each view's packed per-pixel draw, applied after
# batching.
PIXEL_PARAMS = 'pixel_params'
# Device mode, pretraining, before batching: each view's encoded frames and
# its draw (window, then per-pixel); after: the batch's windows in one
# buffer ('image'), each view's byte offset in it, and its params
# (window_buffer.WINDOW_FIELDS, then per-pixel).
ENCODED = 'encoded'
VIEW_DRAWS = 'view_draws'
VIEW_OFFSETS = 'view_offsets'
VIEW_PARAMS = 'view_params'


def example_seed(seed: int, pipeline_id: int, position) -> tf.Tensor:
  """The stateless seed [2] of the example at `position` of a pipeline."""
  base = tf.constant([seed, seed * _PIPELINE_SALT + pipeline_id], tf.int64)
  return tf.random.experimental.stateless_fold_in(
      base, tf.cast(position, tf.int64))


class ClipStarts(Protocol):
  def __call__(self, seed, video_length, config: video_data.VideoDataConfig
               ) -> Tuple[tf.Tensor, tf.Tensor]: ...


class View(Protocol):
  def __call__(self, encoded, seed, view: video_data.ViewAugmentationConfig,
               crop_size: int, cropped_decode_max_area: float,
               defer_decode: bool = False
               ) -> spatial_augment.PreparedView: ...


@dataclasses.dataclass(frozen=True)
class PretrainSteps:
  """The named, swappable steps of a pretraining example (DMVR style).

  clip_starts: where the two clips start (paper 3.3; ablation: one start).
  view: one clip's spatial augmentation (Algorithm 1; ablations: per frame,
  centre crop). A variant passes its own steps to `pretrain_views`.
  """
  clip_starts: ClipStarts
  view: View


def _gap_starts(seed, length, config):
  start_1, start_2, _ = ts.two_clip_starts(
      seed, length, config.num_frames, config.frame_stride,
      shape=config.temporal.gap_shape, power=config.temporal.gap_power)
  return start_1, start_2


def _same_starts(seed, length, config):
  start, _, _ = ts.same_starts(seed, length, config.num_frames,
                               config.frame_stride)
  return start, start


def pretrain_steps(config: video_data.VideoDataConfig) -> PretrainSteps:
  """The steps of the configured recipe: each Table 9 ablation swaps one."""
  spatial = config.spatial
  if not spatial.enabled:
    view = spatial_augment.centre_crop_view
  elif not spatial.temporally_consistent:
    view = spatial_augment.per_frame_view
  else:
    view = spatial_augment.consistent_view
  starts = _gap_starts if config.temporal.enabled else _same_starts
  return PretrainSteps(clip_starts=starts, view=view)


def _prepared(view_step: View, encoded, seed, view,
              config) -> spatial_augment.PreparedView:
  """A view step's output with the static shape TPUs need: the resized
  window (host), or the encoded frames, decoded after batching
  (`augment_on: device`)."""
  if config.augment_on == 'device':
    prepared = view_step(encoded, seed, view, config.crop_size,
                         config.cropped_decode_max_area, defer_decode=True)
    shape = [config.num_frames]
  else:
    prepared = view_step(encoded, seed, view, config.crop_size,
                         config.cropped_decode_max_area)
    shape = [config.num_frames, config.crop_size, config.crop_size, 3]
  return spatial_augment.PreparedView(
      tf.ensure_shape(prepared.frames, shape), prepared.params)


def _augmented(prepared: spatial_augment.PreparedView,
               config) -> tf.Tensor:
  """The per-pixel part on the host, float32 [T, S, S, 3] in [0, 1]."""
  return tf.ensure_shape(
      spatial_augment.augmented(prepared, config.xla_augment),
      [config.num_frames, config.crop_size, config.crop_size, 3])


def pretrain_views(example: Dict[str, tf.Tensor], seed,
                   config: video_data.VideoDataConfig,
                   steps: Optional[PretrainSteps] = None
                   ) -> Dict[str, tf.Tensor]:
  """Two clips of one video, prepared for Algorithm 1's per-pixel part.

  Phases: sample the two starts -> gather their frames -> decode the crop
  windows -> (host mode) resize: 'image' [2, T, S, S, 3] float32 in [0,
  255] and PIXEL_PARAMS, the per-pixel draws, applied once a batch
  (`_arrange_batch`; `augmented_views` for one example) -- or (`augment_on:
  device`) ENCODED the encoded frames [2, T] and VIEW_DRAWS [2, D + P] or
  [2, T, D + P]: decoded after batching (`_pack_batch`), the rest left to
  the train step.
  `steps`: default the configured recipe's.
  """
  steps = steps or pretrain_steps(config)
  time_seed, order_seed, seed_1, seed_2 = tf.unstack(
      tf.random.experimental.stateless_split(seed, 4))
  frames = example['frames']
  length = tf.shape(frames)[0]
  start_1, start_2 = steps.clip_starts(time_seed, length, config)
  if config.temporal.random_view_order:
    start_1, start_2 = ts.random_order(order_seed, start_1, start_2)
  spatial = config.spatial
  views = []
  for start, view_seed, view in ((start_1, seed_1, spatial.view_1),
                                 (start_2, seed_2, spatial.view_2)):
    indices = ts.clip_indices(start, length, config.num_frames,
                              config.frame_stride, config.temporal.short_video)
    views.append(_prepared(steps.view, tf.gather(frames, indices), view_seed,
                           view, config))
  extra = {}
  if config.background.method != 'none':
    # Used after batching (host) or in the train step (device), where the
    # other videos of the batch are at hand.
    extra[DEBIAS_SEED] = tf.random.experimental.stateless_fold_in(
        seed, _DEBIAS_SALT)
  if config.augment_on == 'device':
    return {ENCODED: tf.stack([v.frames for v in views]),
            VIEW_DRAWS: tf.stack([v.params for v in views]),
            'label': example['label'], **extra}
  # Host mode: the per-pixel part runs on the batch (`_arrange_batch`): one
  # call a batch, not one a clip.
  return {'image': tf.stack([v.frames for v in views]),
          PIXEL_PARAMS: tf.stack([v.params for v in views]),
          'label': example['label'], **extra}


def augmented_views(views: Dict[str, tf.Tensor],
                    config: video_data.VideoDataConfig) -> tf.Tensor:
  """Host mode: the per-pixel part on one example's `pretrain_views`
  output, float32 [2, T, S, S, 3] in [0, 1], as the batched pipeline applies
  it (one example at a time here: eager use, tests)."""
  apply = (spatial_augment.apply_views_xla if config.xla_augment
           else spatial_augment.apply_views)
  return apply(views['image'], views[PIXEL_PARAMS])


def train_clip(example: Dict[str, tf.Tensor], seed,
               config: video_data.VideoDataConfig) -> Dict[str, tf.Tensor]:
  """One clip at a uniform start with crop and flip: [T, S, S, 3]."""
  time_seed, view_seed = tf.unstack(
      tf.random.experimental.stateless_split(seed, 2))
  frames = example['frames']
  length = tf.shape(frames)[0]
  start = ts.random_start(time_seed, length, config.num_frames,
                          config.frame_stride)
  indices = ts.clip_indices(start, length, config.num_frames,
                            config.frame_stride, config.temporal.short_video)
  image = _augmented(_prepared(spatial_augment.consistent_view,
                               tf.gather(frames, indices), view_seed,
                               config.train_view, config), config)
  return {'image': image, 'label': example['label']}


def checked_label(example: Dict[str, tf.Tensor],
                  config: video_data.VideoDataConfig) -> tf.Tensor:
  """The example's label, failing (with the clip id) unless it is in
  [0, num_classes): a label map with more classes than the experiment, or
  unlabelled records, would otherwise train on all-zero targets."""
  label = example['label']
  message = tf.strings.format(
      'label {} of clip {} is outside [0, num_classes={}): the records were '
      'converted with another label map (task.train_data/validation_data.'
      'num_classes, model.head.num_classes) or carry no label',
      [label, example['id'], config.num_classes])
  check = tf.debugging.Assert(
      tf.logical_and(label >= 0, label < config.num_classes), [message])
  with tf.control_dependencies([check]):
    return tf.identity(label)


_PROCESSORS = {
    'pretrain': pretrain_views,
    'train': train_clip,
    'test': eval_views.test_views,
}


def _views_first(x: tf.Tensor) -> tf.Tensor:
  """[B, 2, ...] -> [2, B, ...] -> [2B, ...]: all first views, then second."""
  perm = [1, 0] + list(range(2, x.shape.rank))
  x = tf.transpose(x, perm)
  return tf.reshape(x, [-1] + x.shape[2:].as_list())


def _pack_batch(batch: Dict[str, tf.Tensor], budget: int,
                config: video_data.VideoDataConfig) -> Dict[str, tf.Tensor]:
  """Device mode, on the host after batching: decodes every window of the
  batch into one buffer (`window_buffer.pack`): 'image' uint8 [L], and
  VIEW_OFFSETS [B, 2] or [B, 2, T] and VIEW_PARAMS [..., W + P]."""
  batch = dict(batch)
  encoded, draws = batch.pop(ENCODED), batch.pop(VIEW_DRAWS)
  num_draw = window_buffer.NUM_DRAW_FIELDS
  per_frame = draws.shape.rank == 4
  views = tf.shape(draws)[:-1]
  draws = tf.reshape(draws, [-1, draws.shape[-1]])
  buffer, offsets, window = window_buffer.pack(
      tf.reshape(encoded, [-1, 1 if per_frame else config.num_frames]),
      tf.cast(draws[:, :num_draw], tf.int32), tuple(config.device_canvas),
      budget)
  params = tf.concat([window, draws[:, num_draw:]], axis=1)
  batch.update({'image': buffer,
                VIEW_OFFSETS: tf.reshape(offsets, views),
                VIEW_PARAMS: tf.reshape(
                    params, tf.concat([views, [params.shape[-1]]], 0))})
  return batch


def budget_fraction(config: video_data.VideoDataConfig,
                    batch_size: int) -> float:
  """`device_budget`, or for 0 the per-replica batch's default."""
  return config.device_budget or window_buffer.auto_budget(batch_size)


def device_budget(config: video_data.VideoDataConfig, batch_size: int) -> int:
  """Bytes of window data in a device-mode batch's buffer; fails naming
  `device_budget` when the buffer would not fit int32 offsets."""
  fraction = budget_fraction(config, batch_size)
  budget = window_buffer.budget_bytes(batch_size, config.num_frames,
                                      tuple(config.device_canvas), fraction)
  length = window_buffer.buffer_length(budget, tuple(config.device_canvas))
  if length > window_buffer.MAX_BUFFER_BYTES:
    raise base.ConfigError(
        f'device_budget={fraction}: a buffer of {length} bytes '
        f'for a per-replica batch of {batch_size} (device_canvas '
        f'{tuple(config.device_canvas)}, num_frames {config.num_frames}) '
        f'exceeds {window_buffer.MAX_BUFFER_BYTES}; expected a smaller '
        'budget, canvas or per-replica batch')
  return budget


def device_views(buffer: tf.Tensor, offsets: tf.Tensor,
                 view_params: tf.Tensor, config: video_data.VideoDataConfig
                 ) -> tf.Tensor:
  """augment_on: device, in the train step: a batch as the host sent it
  (`_pack_batch`: the buffer, offsets [B, 2, ...], params [B, 2, ...]) ->
  the views float32 [2B, T, S, S, 3] in [0, 1], all first views, then all
  second (host mode's layout)."""
  apply = (spatial_augment.apply_batch_xla if config.xla_augment
           else spatial_augment.apply_batch)

  def views(offsets, params):
    return apply(buffer, offsets, params, config.num_frames,
                 config.crop_size, config.device_canvas[1])
  return _views_first(_per_view(views, offsets, view_params))


def _per_view(apply, image: tf.Tensor, params: tf.Tensor) -> tf.Tensor:
  """apply(views [N, ...], params [N, ...]) -> [N, ...] on a batch of
  example pairs [B, 2, ...]: the 2B views in one call, back as [B, 2, ...]."""
  def flat(x):
    return tf.reshape(x, [-1] + x.shape[2:].as_list())
  out = apply(flat(image), flat(params))
  return tf.reshape(out, [-1, 2] + out.shape[1:].as_list())


def finish_views(first: tf.Tensor, second: tf.Tensor,
                 debias_seed: Optional[tf.Tensor],
                 config: video_data.VideoDataConfig):
  """What follows Algorithm 1's per-pixel part, the same wherever that ran
  (host: here; device: PretrainTask.device_preprocess): the background
  debiasing of the batch's two views [B, T, S, S, 3] when it is seeded, then
  [0, 1] -> [-1, 1] with zero_centering. Returns (first, second)."""
  if debias_seed is not None:
    first, second = background_debias.debias(first, second, debias_seed,
                                             config.background)
  if config.zero_centering:
    first, second = first * 2.0 - 1.0, second * 2.0 - 1.0
  return first, second


def _arrange_batch(batch: Dict[str, tf.Tensor],
                   config: video_data.VideoDataConfig) -> Dict[str, tf.Tensor]:
  """Normalises, casts, and lays out the two views of a pretraining batch."""
  image = batch['image']
  if PIXEL_PARAMS in batch:  # pretrain, host mode: resized, to augment
    apply = (spatial_augment.apply_views_xla if config.xla_augment
             else spatial_augment.apply_views)
    image = _per_view(apply, image, batch[PIXEL_PARAMS])
  if config.mode == 'pretrain':
    image = tf.stack(finish_views(image[:, 0], image[:, 1],
                                  batch.get(DEBIAS_SEED), config), axis=1)
  elif config.zero_centering:
    image = image * 2.0 - 1.0
  image = tf.cast(image, 'float32' if config.dtype == 'auto' else config.dtype)
  if config.mode != 'pretrain':
    extra = {'id': batch['id']} if 'id' in batch else {}
    return {'image': image, 'label': batch['label'], **extra}
  if config.output_layout == 'dict':
    return {'view_1': image[:, 0], 'view_2': image[:, 1],
            'label': batch['label']}
  return {'image': _views_first(image), 'label': batch['label']}


def source_dataset(config: video_data.VideoDataConfig,
                   input_context: Optional[tf.distribute.InputContext] = None,
                   first_position: int = 0) -> tf.data.Dataset:
  """{'frames', 'label', 'id'} of this pipeline from stream position
  `first_position` on, shuffled and repeated if training.

  TFRecords: epoch e's order depends only on (seed, e), so a restart reads
  at most one epoch (`video_sources.TFRecordSource`). TFDS sources skip
  from the start of the stream (a restart re-reads what was seen; they are
  the small UCF-101 / HMDB-51 copies).
  """
  training = (config.is_training if config.is_training is not None
              else config.mode != 'test')
  seed = config.seed or 0
  repeat = training and config.repeat
  buffer = config.shuffle_buffer_size if training else 0
  if not config.tfds_name:
    source = video_sources.TFRecordSource(
        config.input_path, shuffle=training, seed=seed,
        cycle_length=config.cycle_length, shuffle_buffer_size=buffer,
        input_context=input_context)
    return source.stream(first_position, repeat=repeat)
  dataset = video_sources.tfds_dataset(
      config.tfds_name, config.tfds_split or 'train', config.tfds_data_dir,
      frames_key=config.tfds_frames_key, label_key=config.tfds_label_key,
      shuffle_files=training, seed=seed, repeat=repeat,
      input_context=input_context)
  if buffer > 1:
    dataset = dataset.shuffle(buffer, seed=seed + 1,
                              reshuffle_each_iteration=True)
  return dataset.skip(first_position) if first_position else dataset


def build_dataset(config: video_data.VideoDataConfig,
                  input_context: Optional[tf.distribute.InputContext] = None,
                  keep_ids: bool = False) -> tf.data.Dataset:
  """The batched pipeline for `config.mode`; batch = per-replica batch size.

  keep_ids: also yield the clip ids ('id', strings: host-side use such as
  feature export; accelerators take no strings, so training leaves it off).
  """
  config.validate()
  if config.augment_on == 'auto':
    raise base.ConfigError(
        "augment_on='auto': it is resolved when a job starts "
        "(cvrl.configs.launch.prepare, for the devices it computes on); "
        "set 'host' or 'device' to build this input on its own")
  batch_size = (input_context.get_per_replica_batch_size(
      config.global_batch_size) if input_context else config.global_batch_size)
  # Device mode: a buffer too large is refused before reading anything.
  budget = (device_budget(config, batch_size)
            if config.augment_on == 'device' else None)
  pipeline_id = input_context.input_pipeline_id if input_context else 0
  process = _PROCESSORS[config.mode]
  seed = config.seed or 0

  def process_at(position, example):
    if config.mode != 'pretrain' and config.num_classes > 0:
      example = dict(example, label=checked_label(example, config))
    out = process(example, example_seed(seed, pipeline_id, position), config)
    if keep_ids:
      out['id'] = example['id']
    return out

  # Each step drew one per-replica batch for every replica this pipeline
  # feeds: global batch / number of pipelines examples.
  num_pipelines = input_context.num_input_pipelines if input_context else 1
  first = config.start_step * (config.global_batch_size // num_pipelines)
  dataset = source_dataset(config, input_context, first).enumerate(
      start=first)
  dataset = dataset.map(
      process_at,
      num_parallel_calls=(tf.data.AUTOTUNE if config.num_parallel_calls < 0
                          else config.num_parallel_calls),
      deterministic=True)
  dataset = dataset.batch(batch_size, drop_remainder=config.drop_remainder)
  if config.augment_on == 'device':
    # Decoded into one buffer; the rest is `device_views` in the step.
    dataset = dataset.map(lambda b: _pack_batch(b, budget, config),
                          num_parallel_calls=tf.data.AUTOTUNE,
                          deterministic=True)
  else:
    dataset = dataset.map(lambda b: _arrange_batch(b, config),
                          num_parallel_calls=tf.data.AUTOTUNE,
                          deterministic=True)
  options = tf.data.Options()
  options.deterministic = True
  options.experimental_optimization.map_parallelization = True
  dataset = dataset.with_options(options)
  return dataset.prefetch(config.prefetch_buffer_size or tf.data.AUTOTUNE)
