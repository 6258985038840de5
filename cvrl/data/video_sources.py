"""Sources of encoded videos, all mapped to one feature dict.

Every source yields {'frames': string [N] (one encoded image per frame),
'label': int32 scalar, 'id': string scalar (the clip id, '' if unknown)}.
TFRecords are those written by `tfrecords_tools` (or DMVR / Model Garden
records with the same keys); TFDS video datasets
(ucf101, hmdb51, ...) come from a local data_dir without decoding frames.

Sharding: with a `tf.distribute.InputContext`, every input pipeline (one per
host on a TPU pod) reads its own part: whole files when there are at least
as many files as pipelines, otherwise every n-th record.
"""

from typing import List, Optional, Sequence, Union

import tensorflow as tf

from cvrl.data import clip_augment
from cvrl.data import features


class InputError(ValueError):
  """An input path or dataset that cannot be read as configured."""


def _patterns(input_path: Union[str, Sequence[str]]) -> List[str]:
  if isinstance(input_path, str):
    return [p for p in input_path.split(',') if p]
  return list(input_path)


def list_files(input_path) -> List[str]:
  """Sorted files matching comma-separated globs (local or gs://)."""
  files = []
  for pattern in _patterns(input_path):
    matched = tf.io.gfile.glob(pattern)
    if not matched:
      raise InputError(f'input_path {pattern!r} matches no file')
    files.extend(matched)
  return sorted(set(files))


def parse_record(serialized: tf.Tensor) -> dict:
  """A serialised SequenceExample -> {'frames', 'label', 'id'}."""
  context, sequence = tf.io.parse_single_sequence_example(
      serialized,
      context_features={
          features.LABEL_INDEX_KEY: tf.io.FixedLenFeature(
              [], tf.int64, default_value=features.NO_LABEL),
          features.CLIP_ID_KEY: tf.io.FixedLenFeature(
              [], tf.string, default_value=''),
      },
      sequence_features={
          features.IMAGE_KEY: tf.io.FixedLenSequenceFeature([], tf.string),
      })
  return {
      'frames': clip_augment.check_frames(sequence[features.IMAGE_KEY]),
      'label': tf.cast(context[features.LABEL_INDEX_KEY], tf.int32),
      'id': context[features.CLIP_ID_KEY],
  }


def tfrecord_dataset(input_path, *, shuffle_files: bool, seed: int,
                     repeat: bool, cycle_length: Optional[int],
                     input_context: Optional[tf.distribute.InputContext] = None
                     ) -> tf.data.Dataset:
  """Serialised records of this pipeline's share of the files."""
  files = list_files(input_path)
  num_pipelines = input_context.num_input_pipelines if input_context else 1
  pipeline_id = input_context.input_pipeline_id if input_context else 0
  dataset = tf.data.Dataset.from_tensor_slices(files)
  shard_files = num_pipelines > 1 and len(files) >= num_pipelines
  if shard_files:
    dataset = dataset.shard(num_pipelines, pipeline_id)
  if repeat:
    dataset = dataset.repeat()
  if shuffle_files:
    dataset = dataset.shuffle(len(files), seed=seed,
                              reshuffle_each_iteration=True)
  dataset = dataset.interleave(
      tf.data.TFRecordDataset,
      cycle_length=min(cycle_length or 16, len(files)), block_length=1,
      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  if num_pipelines > 1 and not shard_files:
    dataset = dataset.shard(num_pipelines, pipeline_id)
  return dataset.map(parse_record, num_parallel_calls=tf.data.AUTOTUNE,
                     deterministic=True)


def tfds_dataset(name: str, split: str, data_dir: Optional[str], *,
                 frames_key: str, label_key: str, shuffle_files: bool,
                 seed: int, repeat: bool,
                 input_context: Optional[tf.distribute.InputContext] = None
                 ) -> tf.data.Dataset:
  """A TFDS video dataset with frames left encoded, as {'frames', 'label'}."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  builder = tfds.builder(name, data_dir=data_dir or None)
  if frames_key not in builder.info.features:
    raise InputError(f'tfds_frames_key={frames_key!r}: dataset {name} has '
                     f'features {sorted(builder.info.features)}')
  read_config = tfds.ReadConfig(shuffle_seed=seed, input_context=input_context)
  dataset = builder.as_dataset(
      split=split, shuffle_files=shuffle_files, read_config=read_config,
      decoders={frames_key: tfds.decode.SkipDecoding()})
  if repeat:
    dataset = dataset.repeat()

  def to_dict(example):
    label = example[label_key] if label_key else tf.constant(
        features.NO_LABEL, tf.int64)
    # TFDS video datasets carry no clip id.
    return {'frames': clip_augment.check_frames(example[frames_key]),
            'label': tf.cast(label, tf.int32), 'id': tf.constant('')}
  return dataset.map(to_dict, num_parallel_calls=tf.data.AUTOTUNE,
                     deterministic=True)
