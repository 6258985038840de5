"""The assembled tf.data pipelines: layout, determinism, resuming, protocols."""

import dataclasses

import numpy as np
import pytest
from scipy import stats
import tensorflow as tf
import tensorflow_datasets as tfds

from cvrl.configs import base
from cvrl.configs import video_data
from cvrl.data import pipelines
from cvrl.data import spatial_augment
from cvrl.data import video_sources
from tests import video_records

T, S = 4, 32


def _config(path, **overrides):
  config = video_data.VideoDataConfig(
      input_path=path, global_batch_size=2, num_frames=T, frame_stride=2,
      crop_size=S, seed=7, shuffle_buffer_size=4)
  return config.replace(**overrides) if overrides else config


def _take(config, n, input_context=None):
  dataset = pipelines.build_dataset(config, input_context)
  return [{k: v.numpy() for k, v in b.items()} for b in dataset.take(n)]


@pytest.fixture(scope='module')
def textured_file(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('rec') / 'videos.tfrecord')
  videos = [([video_records.textured_frame(48, 64, seed=10 * v + k)
              for k in range(20 + 3 * v)], v % 3) for v in range(8)]
  return video_records.write_records(path, videos)


@pytest.fixture(scope='module')
def index_file(tmp_path_factory):
  """Videos of flat frames whose brightness encodes the frame index."""
  path = str(tmp_path_factory.mktemp('rec') / 'index.tfrecord')
  videos = [(video_records.index_frames(60), v) for v in range(4)]
  return video_records.write_records(path, videos)


def test_pretrain_layout_first_views_first(textured_file):
  stacked = _take(_config(textured_file), 2)
  as_dict = _take(_config(textured_file, output_layout='dict'), 2)
  for a, b in zip(stacked, as_dict):
    assert a['image'].shape == (4, T, S, S, 3) and a['label'].shape == (2,)
    np.testing.assert_array_equal(a['image'][:2], b['view_1'])
    np.testing.assert_array_equal(a['image'][2:], b['view_2'])
    assert 0.0 <= a['image'].min() and a['image'].max() <= 1.0


def test_same_seed_same_batches_other_seed_differs(textured_file):
  a = _take(_config(textured_file), 3)
  b = _take(_config(textured_file), 3)
  c = _take(_config(textured_file, seed=8), 3)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x['image'], y['image'])
  assert any(np.abs(x['image'] - z['image']).mean() > 1e-3
             for x, z in zip(a, c))


def test_restart_at_step_k_sees_the_same_batches(textured_file):
  full = _take(_config(textured_file), 6)
  resumed = _take(_config(textured_file, start_step=3), 3)
  for x, y in zip(full[3:], resumed):
    np.testing.assert_array_equal(x['image'], y['image'])
    np.testing.assert_array_equal(x['label'], y['label'])


def test_restart_in_a_later_epoch_sees_the_same_batches(textured_file):
  """8 videos at batch 2: 4 steps an epoch; 3 epochs uninterrupted vs
  restarts inside epochs 1 and 2 (epoch order drawn from (seed, epoch))."""
  full = _take(_config(textured_file), 12)
  epochs = [sorted(l for b in full[4 * e:4 * e + 4] for l in b['label'])
            for e in range(3)]
  assert epochs[0] == epochs[1] == epochs[2]  # every video once an epoch
  for start in (4, 5, 9):
    resumed = _take(_config(textured_file, start_step=start), 12 - start)
    for x, y in zip(full[start:], resumed):
      np.testing.assert_array_equal(x['image'], y['image'])
      np.testing.assert_array_equal(x['label'], y['label'])


@pytest.mark.parametrize('num_files', [1, 4])
def test_restart_per_input_pipeline_is_exact(tmp_path, num_files):
  """Two pipelines (hosts): whole files each (4 files) or every other record
  (1 file); each pipeline's restart equals its uninterrupted stream."""
  videos = [(video_records.index_frames(6 + v), v) for v in range(12)]
  for f in range(num_files):
    video_records.write_records(str(tmp_path / f'{f}.tfrecord'),
                                videos[f::num_files])
  config = _config(str(tmp_path / '*.tfrecord'), global_batch_size=4,
                   output_layout='dict', num_frames=2, crop_size=8)
  for pipeline_id in range(2):
    context = tf.distribute.InputContext(num_input_pipelines=2,
                                         input_pipeline_id=pipeline_id,
                                         num_replicas_in_sync=2)
    full = _take(config, 9, context)  # 6 videos a pipeline: 3 an epoch
    resumed = _take(config.replace(start_step=4), 5, context)
    for x, y in zip(full[4:], resumed):
      np.testing.assert_array_equal(x['label'], y['label'])
      np.testing.assert_array_equal(x['view_1'], y['view_1'])


def test_restart_at_epoch_50_reads_at_most_one_epoch(textured_file,
                                                     monkeypatch):
  reads = []

  def counting_reader(path):
    def count(record):
      reads.append(1)
      return record
    return tf.data.TFRecordDataset(path).map(
        lambda r: tf.py_function(count, [r], tf.string))

  monkeypatch.setattr(video_sources, 'read_records', counting_reader)
  config = _config(textured_file, shuffle_buffer_size=1, prefetch_buffer_size=1,
                   num_parallel_calls=1, num_frames=2, crop_size=8)
  # 8 records an epoch, batch 2: step 201 is record 2 of epoch 50.
  first = _take(config.replace(start_step=201), 1)
  per_epoch = 8
  assert len(reads) <= 2 * per_epoch, (
      f'read {len(reads)} records to restart at epoch 50 (skipping from the '
      f'start would read {201 * 2})')
  reads.clear()
  # The same batch as an uninterrupted stream (which has to read them all).
  full = _take(config, 202)
  assert len(reads) >= 201 * 2
  np.testing.assert_array_equal(first[0]['image'], full[201]['image'])


def test_count_records_reads_headers_and_names_a_truncated_file(
    textured_file, tmp_path):
  assert video_sources.count_records(textured_file) == 8
  with open(textured_file, 'rb') as f:
    data = f.read()
  cut = str(tmp_path / 'cut.tfrecord')
  with open(cut, 'wb') as f:
    f.write(data[:-100])
  with pytest.raises(video_sources.InputError, match='cut.tfrecord'):
    video_sources.count_records(cut)
  empty = str(tmp_path / 'empty.tfrecord')
  open(empty, 'wb').close()
  assert video_sources.count_records(empty) == 0


def test_eager_equals_the_same_op_inside_tf_data(textured_file):
  config = _config(textured_file, shuffle_buffer_size=1, global_batch_size=1,
                   output_layout='dict')
  batches = _take(config, 3)
  records = list(tf.data.TFRecordDataset(textured_file).take(3))
  for position, (record, batch) in enumerate(zip(records, batches)):
    example = video_sources.parse_record(record)
    seed = pipelines.example_seed(7, 0, position)
    eager = pipelines.augmented_views(
        pipelines.pretrain_views(example, seed, config), config).numpy()
    np.testing.assert_allclose(eager[0], batch['view_1'][0], atol=1e-6)
    np.testing.assert_allclose(eager[1], batch['view_2'][0], atol=1e-6)


def test_frame_indices_through_the_whole_pipeline(index_file):
  config = _config(index_file, num_frames=8, frame_stride=2)
  config.spatial.enabled = False  # centre crop only: brightness = frame index
  for batch in _take(config, 4):
    views = batch['image'].reshape(2, 2, 8, S, S, 3)
    idx = video_records.frame_index_of(views.mean(axis=(3, 4, 5)))
    for clip in idx.reshape(-1, 8):
      np.testing.assert_array_equal(np.diff(clip), 2)  # stride 2, no wrap
    assert np.all(idx[1, :, 0] >= 0) and np.all(idx.max() < 60)
  train = _take(_config(index_file, mode='train', num_frames=16), 2)
  for batch in train:
    idx = video_records.frame_index_of(batch['image'].mean(axis=(2, 3, 4)))
    for clip in idx:
      np.testing.assert_array_equal(np.diff(clip), 2)


def test_view_1_is_the_earlier_clip_half_the_time(index_file):
  """The release shuffles the pair; random_view_order=false keeps the
  earlier clip first."""
  def first_frames(random_order):
    config = _config(index_file, num_frames=4, frame_stride=2,
                     global_batch_size=4, output_layout='dict')
    config.spatial.enabled = False
    config.temporal.random_view_order = random_order
    firsts = []
    for batch in _take(config, 40):
      for view in ('view_1', 'view_2'):
        firsts.append(video_records.frame_index_of(
            batch[view].mean(axis=(2, 3, 4)))[:, 0])
    return np.stack(firsts[0::2]).ravel(), np.stack(firsts[1::2]).ravel()
  one, two = first_frames(True)
  later_first = np.sum(one > two)
  distinct = np.sum(one != two)
  assert distinct > 100
  assert stats.binomtest(int(later_first), int(distinct), 0.5).pvalue > 1e-3
  one, two = first_frames(False)
  assert np.all(one <= two)


def test_test_mode_keeps_30_views_together_and_matches_a_hand_computation(
    index_file):
  config = _config(index_file, mode='test', num_frames=8, frame_stride=2,
                   test_short_side=S, num_test_clips=10, num_test_crops=3)
  batches = _take(config, 2)
  assert len(batches) == 2 and batches[0]['image'].shape == (2, 30, 8, S, S, 3)
  image = batches[0]['image'][0]
  # Clip c starts at round(c * (60 - 15) / 9); frames are flat, so every crop
  # of a clip shows the same frame brightness.
  starts = np.round(np.linspace(0, 60 - 15, 10)).astype(int)
  idx = video_records.frame_index_of(image.mean(axis=(2, 3, 4)))
  for c in range(10):
    for crop in range(3):
      np.testing.assert_array_equal(idx[3 * c + crop],
                                    starts[c] + 2 * np.arange(8))
  np.testing.assert_array_equal(batches[0]['label'], [0, 1])  # file order


def test_test_crops_cover_the_long_side(textured_file):
  config = _config(textured_file, mode='test', num_frames=2,
                   test_short_side=S, num_test_clips=1, num_test_crops=3)
  views = _take(config, 1)[0]['image'][0]  # [3, 2, S, S, 3]
  frame = tf.io.decode_jpeg(next(iter(
      tf.data.TFRecordDataset(textured_file).map(video_sources.parse_record)
  ))['frames'][0]).numpy()
  resized = tf.image.resize(frame[None], [S, 43]).numpy()[0] / 255.0
  np.testing.assert_allclose(views[0, 0], resized[:, :S], atol=1e-5)
  np.testing.assert_allclose(views[2, 0], resized[:, -S:], atol=1e-5)


def test_input_context_shards_disjoint_parts(tmp_path):
  files = []
  for f in range(4):
    videos = [(video_records.index_frames(4), 10 * f + v) for v in range(2)]
    files.append(video_records.write_records(str(tmp_path / f'{f}.tfrecord'),
                                             videos))
  labels = []
  for pipeline_id in range(2):
    context = tf.distribute.InputContext(num_input_pipelines=2,
                                         input_pipeline_id=pipeline_id,
                                         num_replicas_in_sync=2)
    config = _config(str(tmp_path / '*.tfrecord'), mode='test',
                     test_short_side=S, num_test_clips=1, num_test_crops=1,
                     global_batch_size=2)
    labels.append(sorted(l for b in _take(config, 10, context)
                         for l in b['label']))
  assert len(labels[0]) == len(labels[1]) == 4  # per-replica batch 1
  assert not set(labels[0]) & set(labels[1])
  assert sorted(labels[0] + labels[1]) == [0, 1, 10, 11, 20, 21, 30, 31]


def test_short_and_one_frame_videos_go_through(tmp_path):
  videos = [([video_records.textured_frame(seed=1)], 0),
            (video_records.index_frames(3), 1)]
  path = video_records.write_records(str(tmp_path / 'short.tfrecord'), videos)
  for policy in ('loop', 'pad'):
    config = _config(path, num_frames=16)
    config.temporal.short_video = policy
    batch = _take(config, 1)[0]
    assert batch['image'].shape == (4, 16, S, S, 3)
    assert np.isfinite(batch['image']).all()


def test_bad_records_fail_naming_the_feature(tmp_path):
  good = video_records.encode(video_records.textured_frame())
  no_frames = str(tmp_path / 'empty.tfrecord')
  with tf.io.TFRecordWriter(no_frames) as w:
    w.write(video_records.sequence_example([], 0))
  garbage = str(tmp_path / 'garbage.tfrecord')
  with tf.io.TFRecordWriter(garbage) as w:
    w.write(video_records.sequence_example([good] * 3 + [b'junk'] * 30, 0))
  truncated = str(tmp_path / 'truncated.tfrecord')
  with tf.io.TFRecordWriter(truncated) as w:
    w.write(video_records.sequence_example([good[:len(good) // 2]] * 30, 0))
  for path in (no_frames, garbage, truncated):
    with pytest.raises(tf.errors.InvalidArgumentError, match='image/encoded'):
      _take(_config(path, global_batch_size=1), 1)


def test_missing_input_fails_naming_the_pattern(tmp_path):
  with pytest.raises(video_sources.InputError, match='nothing-here'):
    _take(_config(str(tmp_path / 'nothing-here-*.tfrecord')), 1)


def test_a_glob_matching_a_folder_fails_naming_it(tmp_path, textured_file):
  """'DIR/*' also matches the converter's .manifest folder: an error that
  names it and says what to give, not a bare 'Is a directory' from tf.data;
  the pattern of the shards alone still reads."""
  shards = tmp_path / 'shards'
  (shards / '.manifest').mkdir(parents=True)
  with open(textured_file, 'rb') as f, open(shards / 'train-0.tfrecord',
                                            'wb') as g:
    g.write(f.read())
  with pytest.raises(video_sources.InputError,
                     match=r"1 folder\(s\), e.g. '.*\.manifest'.*train-\*"):
    video_sources.list_files(str(shards / '*'))
  assert video_sources.list_files(str(shards / 'train-*.tfrecord')) == [
      str(shards / 'train-0.tfrecord')]


def test_tfds_source_with_mock_data():
  with tfds.testing.mock_data(num_examples=4):
    config = video_data.VideoDataConfig(
        tfds_name='ucf101', tfds_split='train', global_batch_size=2,
        num_frames=T, crop_size=S, seed=3)
    batch = _take(config, 1)[0]
  assert batch['image'].shape == (4, T, S, S, 3)
  assert batch['label'].shape == (2,) and batch['label'].dtype == np.int32


def test_bfloat16_and_zero_centering(textured_file):
  batch = _take(_config(textured_file, dtype='bfloat16',
                        zero_centering=True), 1)[0]
  assert batch['image'].dtype == tf.bfloat16.as_numpy_dtype
  image = batch['image'].astype(np.float32)
  assert image.min() < -0.5 and image.max() <= 1.0


def test_config_values_are_checked_by_name():
  config = _config('x')
  with pytest.raises(base.ConfigError, match='spatial.view_2.flip_prob'):
    config.replace(spatial={'view_2': {'flip_prob': 1.5}}).validate()
  with pytest.raises(base.ConfigError, match='temporal.gap_shape'):
    config.replace(temporal={'gap_shape': 'sideways'}).validate()
  with pytest.raises(base.ConfigError, match='mode'):
    config.replace(mode='finetune').validate()
  with pytest.raises(KeyError, match='gap_shap'):
    config.replace(temporal={'gap_shap': 'uniform'})


def test_stream_order_ignores_the_global_seed_and_changes_by_epoch(
    textured_file):
  """The model's init_seed sets TF's global seed; the input order must not
  depend on it (nor fail under it), and each epoch has its own order."""
  config = _config(textured_file, num_frames=2, crop_size=8,
                   output_layout='dict')
  tf.random.set_seed(123)
  try:
    seeded = _take(config, 8)
  finally:
    tf.compat.v1.set_random_seed(None)
  plain = _take(config, 8)
  labels = [tuple(b['label']) for b in plain]
  assert labels == [tuple(b['label']) for b in seeded]
  ids = []
  source = video_sources.TFRecordSource(textured_file, shuffle=True, seed=7,
                                        cycle_length=1, shuffle_buffer_size=4)
  for epoch in range(3):
    ids.append([int(e['label']) * 100 + int(tf.shape(e['frames'])[0])
                for e in source.stream(8 * epoch).take(8)])
  assert sorted(ids[0]) == sorted(ids[1]) == sorted(ids[2])
  assert ids[0] != ids[1] or ids[1] != ids[2]


def _epoch_order(path, seed, buffer, epoch=0):
  """Record indices (file order) of one epoch of the source's stream; the
  textured file's record v has 20 + 3v frames."""
  source = video_sources.TFRecordSource(path, shuffle=True, seed=seed,
                                        cycle_length=1,
                                        shuffle_buffer_size=buffer)
  return [(int(tf.shape(e['frames'])[0]) - 20) // 3
          for e in source.stream(8 * epoch).take(8)]


@pytest.mark.parametrize('buffer', [2, 3, 8])
def test_shuffle_is_a_seeded_buffer_shuffle(textured_file, buffer):
  """tf.data shuffle-buffer semantics: each epoch is a permutation of the
  file's records, and the record at output position j was among the first
  j + buffer records read (a buffer holds `buffer` records); its order is
  a pure function of (seed, epoch): rebuilt, it is the same."""
  orders = {seed: _epoch_order(textured_file, seed, buffer)
            for seed in range(6)}
  for seed, order in orders.items():
    assert sorted(order) == list(range(8)), order
    assert all(index <= j + buffer - 1 for j, index in enumerate(order)), (
        f'buffer {buffer}: {order}')
    assert _epoch_order(textured_file, seed, buffer) == order
  # Shuffled at all, and by the seed: six seeds give more than one order,
  # none of them all left in file order.
  assert len({tuple(o) for o in orders.values()}) > 1
  assert sum(o == list(range(8)) for o in orders.values()) < len(orders)
  assert _epoch_order(textured_file, 0, buffer, epoch=1) != orders[0] or (
      _epoch_order(textured_file, 0, buffer, epoch=2) != orders[0])


def test_labels_outside_the_experiments_classes_fail_naming_the_clip(tmp_path):
  videos = [(video_records.index_frames(8), 3, 'ok_video'),
            (video_records.index_frames(8), 7, 'clip_with_label_7')]
  path = video_records.write_records(str(tmp_path / 'labels.tfrecord'), videos)
  config = _config(path, mode='train', num_frames=2, crop_size=8,
                   global_batch_size=1, num_classes=5, shuffle_buffer_size=1)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match='label 7 of clip .?.?clip_with_label_7.*num_classes=5'):
    _take(config, 2)
  assert len(_take(config.replace(num_classes=8), 2)) == 2
  # Pretraining does not use labels (unlabelled records are fine there).
  assert len(_take(_config(path, num_classes=5, num_frames=2, crop_size=8,
                           global_batch_size=1), 2)) == 2


def test_ablations_swap_named_steps_and_variants_can_pass_their_own(
    index_file):
  config = _config(index_file, num_frames=4, crop_size=S)
  steps = pipelines.pretrain_steps(config)
  assert steps.view is spatial_augment.consistent_view
  assert steps.clip_starts is pipelines._gap_starts  # pylint: disable=protected-access
  swapped = {
      'spatial': ({'enabled': False}, 'view', spatial_augment.centre_crop_view),
      'spatial_per_frame': ({'temporally_consistent': False}, 'view',
                            spatial_augment.per_frame_view),
      'temporal': ({'enabled': False}, 'clip_starts',
                   pipelines._same_starts),  # pylint: disable=protected-access
  }
  for key, (override, step, want) in swapped.items():
    field = key.split('_')[0]
    changed = pipelines.pretrain_steps(config.replace(**{field: override}))
    assert getattr(changed, step) is want, key
    other = 'clip_starts' if step == 'view' else 'view'
    assert getattr(changed, other) is getattr(steps, other)
  # A variant replaces one step (here: both clips start at frame 0).
  example = video_sources.parse_record(
      next(iter(tf.data.TFRecordDataset(index_file))))
  variant = dataclasses.replace(
      steps, clip_starts=lambda seed, length, cfg: (0, 0),
      view=spatial_augment.centre_crop_view)
  views = pipelines.augmented_views(pipelines.pretrain_views(
      example, tf.constant([1, 2], tf.int64), config, variant),
                                     config).numpy()
  idx = video_records.frame_index_of(views.mean(axis=(2, 3, 4)))
  np.testing.assert_array_equal(idx, [[0, 2, 4, 6]] * 2)
