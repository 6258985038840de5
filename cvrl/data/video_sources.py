"""Sources of encoded videos, all mapped to one feature dict.

Every source yields {'frames': string [N] (one encoded image per frame),
'label': int32 scalar, 'id': string scalar (the clip id, '' if unknown)}.
TFRecords are those written by `tfrecords_tools` (or DMVR / Model Garden
records with the same keys); TFDS video datasets
(ucf101, hmdb51, ...) come from a local data_dir without decoding frames.

Sharding: with a `tf.distribute.InputContext`, every input pipeline (one per
host on a TPU pod) reads its own part: whole files when there are at least
as many files as pipelines, otherwise every n-th record. TFRecord streams
are ordered by epoch (`TFRecordSource`), so a restart late in a long run
reads at most one epoch before its first batch.
"""

import struct
from typing import List, Optional, Sequence, Union

import tensorflow as tf

from cvrl.data import decoding
from cvrl.data import features


class InputError(ValueError):
  """An input path or dataset that cannot be read as configured."""


def _patterns(input_path: Union[str, Sequence[str]]) -> List[str]:
  if isinstance(input_path, str):
    return [p for p in input_path.split(',') if p]
  return list(input_path)


# What the converters write beside the records (never records themselves):
# a glob such as 'dir/*' matches them too.
CONVERTER_FILES = ('label_map.txt', 'manifest.jsonl', 'conversion.json',
                   'record_index.json', 'annotation_problems.csv')


def list_files(input_path) -> List[str]:
  """Sorted files matching comma-separated globs (local or gs://), the
  converters' own files beside the records left out."""
  files = []
  for pattern in _patterns(input_path):
    matched = [m for m in tf.io.gfile.glob(pattern)
               if m.rsplit('/', 1)[-1] not in CONVERTER_FILES]
    if not matched:
      raise InputError(f'input_path {pattern!r} matches no file')
    # A glob such as 'dir/*' also matches the converter's .manifest folder;
    # reading it fails deep inside tf.data with a bare "Is a directory".
    # (Checked locally only: on gs:// it would cost one request per file.)
    folders = [m for m in matched
               if '://' not in m and tf.io.gfile.isdir(m)]
    if folders:
      raise InputError(
          f'input_path {pattern!r} matches {len(folders)} folder(s), e.g. '
          f'{folders[0]!r}: give a pattern of TFRecord files, such as '
          "'DIR/train-*.tfrecord'")
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
      'frames': decoding.check_frames(sequence[features.IMAGE_KEY]),
      'label': tf.cast(context[features.LABEL_INDEX_KEY], tf.int32),
      'id': context[features.CLIP_ID_KEY],
  }


# Salts that keep the per-epoch file order and shuffle seeds apart.
_FILE_ORDER_SALT, _SHUFFLE_SALT = 7_919, 104_729
# TFRecord framing: uint64 length, uint32 CRC, data, uint32 CRC.
_RECORD_HEADER, _RECORD_OVERHEAD = 8, 16


def read_records(path: tf.Tensor) -> tf.data.Dataset:
  """The serialised records of one file (every read goes through here)."""
  return tf.data.TFRecordDataset(path)


def _header_reader(path: str):
  """A reader of `path` that reads what is asked and little more: TF's
  buffered stream with an 8-byte buffer (GFile's is 512 KiB, refilled at
  every seek: half a megabyte read per record header). GFile where that
  TF-internal class is missing."""
  try:
    from tensorflow.python.lib.io import _pywrap_file_io  # pylint: disable=g-import-not-at-top
    return _pywrap_file_io.BufferedInputStream(path, _RECORD_HEADER)
  except (ImportError, AttributeError):
    return tf.io.gfile.GFile(path, 'rb')


def count_records(path: str) -> int:
  """Records in one TFRecord file, from their length headers only.

  Reads 8 bytes per record and seeks over the rest (16 bytes + the record
  read per record would be a whole epoch on Kinetics). Raises InputError
  naming the file if it ends inside a record. Converted folders carry their
  counts (`record_index`); this is for records made by other tools and for
  locating a damaged record.
  """
  count, offset = 0, 0
  size = tf.io.gfile.stat(path).length
  reader = _header_reader(path)
  start = 0
  try:
    while offset < size:
      start = offset
      reader.seek(offset)
      header = reader.read(_RECORD_HEADER)
      if len(header) < _RECORD_HEADER:
        break
      offset += _RECORD_OVERHEAD + struct.unpack('<Q', header)[0]
      count += 1
  finally:
    if hasattr(reader, 'close'):
      reader.close()
  if offset != size:
    raise InputError(f'{path}: truncated TFRecord (record #{count}, whose '
                     f'length header is at byte {start}, ends past the end '
                     f'of the file, {size} bytes)')
  return count


def explain_data_loss(error: Exception, input_paths: Sequence[str]) -> str:
  """A one-line message for tf.data's DataLossError ("truncated record at
  159227", no file named): the file and offset found by a header scan of
  the inputs, and the command that checks every record."""
  patterns = [p for p in input_paths if p]
  for path in list_files(','.join(patterns)) if patterns else []:
    try:
      count_records(path)
    except InputError as e:
      found = str(e)
      break
  else:
    found = ('no file is truncated (the damage is inside a record: a '
             'checksum)')
  check = ' '.join(f"--input_path='{p}'" for p in patterns[:1])
  return (f'reading the input failed ({type(error).__name__}: '
          f'{getattr(error, "message", error)}): {found}. Check every '
          f'record with: python -m tfrecords_tools.inspect_tfrecords {check} '
          '--verify')


class TFRecordSource:
  """This input pipeline's share of a set of TFRecord files, by epoch.

  The order of epoch e is a pure function of (seed, e): the files in an order
  drawn from (seed, e), interleaved, then shuffled through a buffer of
  `shuffle_buffer_size` records seeded by (seed, e). So a job restarted at
  step s works out which epoch and which position it is at, and reads at
  most one epoch to get there
  (`stream(first_position)`), instead of re-reading every record it ever saw.

  Sharding with a `tf.distribute.InputContext` (one pipeline per host on a
  TPU pod): whole files when there are at least as many files as pipelines,
  otherwise every n-th record of the interleaved epoch.
  """

  def __init__(self, input_path, *, shuffle: bool, seed: int,
               cycle_length: Optional[int], shuffle_buffer_size: int = 0,
               input_context: Optional[tf.distribute.InputContext] = None):
    files = list_files(input_path)
    self._pipelines = (input_context.num_input_pipelines if input_context
                       else 1)
    self._pipeline_id = (input_context.input_pipeline_id if input_context
                         else 0)
    self._all_files = files
    self._shard_files = (self._pipelines > 1
                         and len(files) >= self._pipelines)
    self.files = (files[self._pipeline_id::self._pipelines]
                  if self._shard_files else files)
    self._shuffle = shuffle
    self._seed = seed
    self._cycle_length = min(cycle_length or 16, len(self.files))
    self._buffer = shuffle_buffer_size if shuffle else 0

  def _epoch_seed(self, salt: int, epoch) -> tf.Tensor:
    base = tf.constant([self._seed, salt], tf.int64)
    return tf.random.experimental.stateless_fold_in(
        base, tf.cast(epoch, tf.int64))

  def epoch(self, epoch) -> tf.data.Dataset:
    """Serialised records of one epoch (epoch: int or int64 tensor)."""
    files = tf.constant(self.files)
    if self._shuffle:
      keys = tf.random.stateless_uniform(
          [len(self.files)], seed=self._epoch_seed(_FILE_ORDER_SALT, epoch))
      files = tf.gather(files, tf.argsort(keys))
    dataset = tf.data.Dataset.from_tensor_slices(files).interleave(
        read_records, cycle_length=self._cycle_length, block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if self._pipelines > 1 and not self._shard_files:
      dataset = dataset.shard(self._pipelines, self._pipeline_id)
    if self._buffer > 1:
      dataset = _seeded_shuffle(dataset, self._buffer,
                                self._epoch_seed(_SHUFFLE_SALT, epoch))
    return dataset

  def records_per_epoch(self) -> int:
    """Records this pipeline reads per epoch: the counts of the job start
    (`dataset_size.count_files`: in this process, the model dir's counts,
    the folders' record indexes), scanned only where none has them."""
    from cvrl.data import dataset_size  # pylint: disable=g-import-not-at-top
    if self._shard_files:
      return sum(dataset_size.count_files(self.files, trust_process=True))
    total = sum(dataset_size.count_files(self._all_files,
                                         trust_process=True))
    return len(range(self._pipeline_id, total, self._pipelines))

  def stream(self, first_position: int = 0, repeat: bool = True,
             parse=None) -> tf.data.Dataset:
    """Parsed examples from stream position `first_position` on.

    Position p is record p % n of epoch p // n (n = records per epoch);
    only the records of that epoch before it are read and dropped.
    parse: serialised record -> dict (default `parse_record`, the video
    classification records).
    """
    first_epoch, skip = 0, first_position
    if first_position:
      per_epoch = self.records_per_epoch()
      if not per_epoch:
        raise InputError(f'input files {self.files[:3]}...: no records')
      first_epoch, skip = divmod(first_position, per_epoch)
      if not repeat and first_epoch:
        raise InputError(
            f'start position {first_position} is past the one epoch '
            f'({per_epoch} records) of a non-repeating input')
    epochs = tf.data.Dataset.range(first_epoch,
                                   _MAX_EPOCHS if repeat else 1)
    dataset = epochs.flat_map(self.epoch)
    if skip:
      dataset = dataset.skip(skip)
    return dataset.map(parse or parse_record,
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _seeded_shuffle(dataset: tf.data.Dataset, size: int,
                    seed: tf.Tensor) -> tf.data.Dataset:
  """tf.data's shuffle buffer of `size` elements, its order a pure function
  of the seed tensor [2] (and of the input's order).

  `Dataset.shuffle` folds TF's global seed into its seeds once one is set
  (the model's init_seed sets it), so the input's order would change with
  the model's seed; the op itself takes both seeds as given. A shuffle
  buffer moves records, it does not copy them: shuffling blocks through
  `batch` and slicing, as before, copied each record (megabytes) twice,
  0.5-0.9 core-ms a record on the benchmark (docs/benchmarks.md).
  """
  seed = tf.cast(seed, tf.int64)
  # Both seeds 0 means "draw a random seed" to the kernel.
  seed2 = tf.where(tf.reduce_all(tf.equal(seed, 0)),
                   tf.constant(2**31 - 1, tf.int64), seed[1])
  spec = dataset.element_spec
  variant = tf.raw_ops.ShuffleDatasetV3(
      input_dataset=tf.data.experimental.to_variant(dataset),
      buffer_size=tf.constant(size, tf.int64), seed=seed[0], seed2=seed2,
      seed_generator=tf.raw_ops.DummySeedGenerator(),
      output_types=[s.dtype for s in tf.nest.flatten(spec)],
      output_shapes=[s.shape for s in tf.nest.flatten(spec)],
      reshuffle_each_iteration=False)
  return tf.data.experimental.from_variant(variant, spec)


# "Forever" for a repeating stream (tf.data ranges need an end).
_MAX_EPOCHS = 2 ** 62


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
    return {'frames': decoding.check_frames(example[frames_key]),
            'label': tf.cast(label, tf.int32), 'id': tf.constant('')}
  return dataset.map(to_dict, num_parallel_calls=tf.data.AUTOTUNE,
                     deterministic=True)
