"""The AVA detector: RoIAlign, dilated res5, checkpoint restore, the keyframe
pipeline's boxes, and the task's train / evaluation contract."""

import math
import os
import re

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from official.core import exp_factory
from official.core import task_factory

from cvrl import registry_imports  # noqa: F401  pylint: disable=unused-import
from cvrl.configs import base
from cvrl.configs import detection as detection_cfg
from cvrl.configs import launch
from cvrl.configs import modeling
from cvrl.configs import precision
from cvrl.data import ava_files
from cvrl.data import detection_pipeline as dp
from cvrl.modeling import action_detector
from cvrl.modeling import checkpoint_restore
from cvrl.modeling import r3d
from tests.conftest import REPO_ROOT
from tests.conftest import pretrained_checkpoint
from tests.conftest import run_module
from tfrecords_tools.conversion import ava_keyframes
from tfrecords_tools.conversion import job
from tfrecords_tools.conversion import shards
from tfrecords_tools.datasets import synthetic_ava

FRAMES, HEIGHT, WIDTH = 4, 32, 48


def _bilinear(fmap, y, x):
  """Detectron2's bilinear_interpolate (ROIAlign_cpu.cpp), one sample."""
  height, width = fmap.shape[:2]
  if y < -1.0 or y > height or x < -1.0 or x > width:
    return np.zeros(fmap.shape[2])
  y, x = max(y, 0.0), max(x, 0.0)
  y_low, x_low = int(y), int(x)
  if y_low >= height - 1:
    y_high = y_low = height - 1
    y = float(y_low)
  else:
    y_high = y_low + 1
  if x_low >= width - 1:
    x_high = x_low = width - 1
    x = float(x_low)
  else:
    x_high = x_low + 1
  ly, lx = y - y_low, x - x_low
  hy, hx = 1.0 - ly, 1.0 - lx
  return (hy * hx * fmap[y_low, x_low] + hy * lx * fmap[y_low, x_high] +
          ly * hx * fmap[y_high, x_low] + ly * lx * fmap[y_high, x_high])


def _reference_roi_align(fmap, box, stride, size=7):
  """NumPy, written from Detectron2's ROIAlign(aligned=True,
  sampling_ratio=0) forward, as PySlowFast's AVA head calls it: box in
  input pixels (y1, x1, y2, x2), spatial_scale 1 / stride, half-pixel
  offset, ceil(roi / bin) samples per bin axis, their mean."""
  scale = 1.0 / stride
  y1, x1, y2, x2 = (float(v) * scale - 0.5 for v in box)
  roi_h, roi_w = y2 - y1, x2 - x1
  bin_h, bin_w = roi_h / size, roi_w / size
  grid_h, grid_w = math.ceil(roi_h / size), math.ceil(roi_w / size)
  count = max(grid_h * grid_w, 1)
  out = np.zeros((size, size, fmap.shape[2]))
  for ph in range(size):
    for pw in range(size):
      total = np.zeros(fmap.shape[2])
      for iy in range(grid_h):
        y = y1 + ph * bin_h + (iy + 0.5) * bin_h / grid_h
        for ix in range(grid_w):
          x = x1 + pw * bin_w + (ix + 0.5) * bin_w / grid_w
          total += _bilinear(fmap, y, x)
      out[ph, pw] = total / count
  return out


def test_roi_align_samples_aligned_bin_centres():
  # On a map whose channels are (y, x), bilinear sampling is exact. A box
  # of 2 cells (32 pixels at stride 16) has one sample per bin; aligned,
  # bin i of a box starting at pixel 64 is at 64 / 16 - 0.5 + (i + 0.5)
  # * 2 / 7 cells: half a cell before Model Garden's unaligned 4 + ...
  yy, xx = np.mgrid[0:8, 0:12].astype(np.float32)
  fmap = np.stack([yy, xx], axis=-1)[None]
  pixels = np.array([64.0, 48.0, 96.0, 80.0])
  box = pixels / np.array([128, 192] * 2)
  out = action_detector.roi_align(tf.constant(fmap), tf.constant(
      box[None, None], tf.float32), (128, 192), 16).numpy()[0, 0]
  centres = (np.arange(7) + 0.5) * 2 / 7
  np.testing.assert_allclose(out[:, 0, 0], 3.5 + centres, atol=1e-5)
  np.testing.assert_allclose(out[0, :, 1], 2.5 + centres, atol=1e-5)


def test_roi_align_matches_detectron2_aligned_reference():
  rng = np.random.default_rng(0)
  fmap = rng.normal(size=(2, 8, 12, 3)).astype(np.float32)
  boxes = np.array([
      # ordinary; the whole frame (ceil(8 / 7) = 2 samples a bin on y, 2 on
      # x); a thin one (< 1 cell: 1 sample); one touching the corner; one
      # of zero height (no sample: 0); one larger than 7 cells (2 x 2).
      [[0.1, 0.2, 0.6, 0.9], [0.0, 0.0, 1.0, 1.0], [0.3, 0.1, 0.35, 0.2]],
      [[0.5, 0.5, 0.97, 0.99], [0.4, 0.4, 0.4, 0.6],
       [0.0, 0.05, 0.95, 0.7]]], np.float32)
  out = action_detector.roi_align(tf.constant(fmap), tf.constant(boxes),
                                  (128, 192), 16).numpy()
  for b in range(2):
    for n in range(3):
      pixels = boxes[b, n] * np.array([128, 192, 128, 192])
      np.testing.assert_allclose(
          out[b, n], _reference_roi_align(fmap[b], pixels, 16), atol=1e-5,
          err_msg=f'box {b}, {n}: {pixels}')


def test_roi_align_compiles_with_xla():
  rng = np.random.default_rng(1)
  fmap = tf.constant(rng.normal(size=(2, 4, 6, 5)), tf.float32)
  boxes = tf.constant(rng.uniform(0, 1, size=(2, 3, 4)), tf.float32)
  boxes = tf.concat([tf.minimum(boxes[..., :2], boxes[..., 2:]),
                     tf.maximum(boxes[..., :2], boxes[..., 2:])], axis=-1)
  compiled = tf.function(
      lambda f, b: action_detector.roi_align(f, b, (64, 96), 16),
      jit_compile=True)
  np.testing.assert_allclose(
      compiled(fmap, boxes).numpy(),
      action_detector.roi_align(fmap, boxes, (64, 96), 16).numpy(),
      atol=1e-5)


def test_dilated_res5_keeps_weights_and_halves_the_stride():
  plain = modeling.R3DConfig(depth=14, width_multiplier=0.25)
  dilated = plain.replace(res5_dilation=2)
  shape = (FRAMES, 64, 96, 3)
  a, b = r3d.build_r3d(plain, shape), r3d.build_r3d(dilated, shape)
  assert r3d.count_params(a) == r3d.count_params(b)
  assert [w.shape for w in a.weights] == [w.shape for w in b.weights]
  assert a.endpoints['res4'].shape == b.endpoints['res4'].shape
  assert a.endpoints['res5'].shape[2:4] == (2, 3)   # 64 x 96 / 32
  assert b.endpoints['res5'].shape[2:4] == (4, 6)   # / 16
  assert (plain.output_stride, dilated.output_stride) == (32, 16)
  with pytest.raises(base.ConfigError, match='res5_dilation'):
    plain.replace(res5_dilation=3).validate()


def _small(params, **task_fields):
  task = params.task
  task.model.backbone.cvrl_r3d.depth = 14
  task.model.backbone.cvrl_r3d.width_multiplier = 0.125
  task.model.norm_activation.use_sync_bn = False
  for data in (task.train_data, task.validation_data):
    data.num_frames, data.frame_size = FRAMES, (HEIGHT, WIDTH)
  task.train_data.global_batch_size = 4
  return params.replace(task=task.replace(**task_fields))


def test_pretraining_checkpoint_restores_into_the_detector(tmp_path):
  pretrained, folder = pretrained_checkpoint(
      str(tmp_path / 'pretrain'), 0.125, (FRAMES, 32, 32, 3))
  params = _small(exp_factory.get_exp_config('cvrl_ava_detection'),
                  init_checkpoint=folder)
  task = task_factory.get_task(params.task)
  model = task.build_model()
  task.initialize(model)
  for want, got in zip(pretrained.backbone.weights, model.backbone.weights):
    np.testing.assert_array_equal(want.numpy(), got.numpy())
  _, wider = pretrained_checkpoint(str(tmp_path / 'wide'), 0.25,
                                   (FRAMES, 32, 32, 3))
  task = task_factory.get_task(params.task.replace(init_checkpoint=wider))
  with pytest.raises(checkpoint_restore.RestoreError,
                     match=r'backbone variable stem_conv/kernel:0 has shape'):
    task.initialize(task.build_model())


def test_a_residual_frame_pretraining_needs_a_residual_frame_detector(
    tmp_path):
  """A checkpoint whose run fed the encoder residual frames restores into a
  detector with input_frames=difference (whose backbone then differences
  the clip), and fails into an RGB detector naming the field."""
  _, folder = pretrained_checkpoint(str(tmp_path / 'pretrain'), 0.125,
                                    (FRAMES, 32, 32, 3))
  with open(os.path.join(folder, 'params.yaml'), 'w') as f:
    f.write('task:\n  model:\n    backbone:\n      cvrl_r3d:\n'
            '        input_frames: difference\n')
  params = _small(exp_factory.get_exp_config('cvrl_ava_detection'),
                  init_checkpoint=folder)
  rgb = task_factory.get_task(params.task)
  with pytest.raises(checkpoint_restore.RestoreError,
                     match='task.model.backbone.cvrl_r3d.input_frames='
                     'difference'):
    rgb.initialize(rgb.build_model())
  params.task.model.backbone.cvrl_r3d.input_frames = 'difference'
  task = task_factory.get_task(params.task)
  model = task.build_model()
  task.initialize(model)
  assert checkpoint_restore.input_frames_of(model.backbone) == 'difference'
  # The detector's backbone sees x[t+1] - x[t]: a clip that is constant in
  # time gives the same features whatever the constant frame is (the head
  # starts at zero, so the backbone is what can tell).
  frames = np.random.default_rng(0).uniform(size=(1, 1, HEIGHT, WIDTH, 3))
  clips = [tf.constant(np.repeat(x, FRAMES, axis=1), tf.float32)
           for x in (frames, 1.0 - frames)]
  features = [model.backbone(c, training=False).numpy() for c in clips]
  np.testing.assert_allclose(features[0], features[1], atol=1e-6)
  # The test can tell: an RGB backbone's features differ.
  rgb_model = task_factory.get_task(_small(exp_factory.get_exp_config(
      'cvrl_ava_detection'), init_checkpoint=folder).task).build_model()
  rgb_features = [rgb_model.backbone(c, training=False).numpy()
                  for c in clips]
  assert np.abs(rgb_features[0] - rgb_features[1]).max() > 1e-4


def _one_sgd_step(model, seed=0):
  rng = np.random.default_rng(seed)
  clip = tf.constant(rng.uniform(size=(2, FRAMES, HEIGHT, WIDTH, 3)),
                     tf.float32)
  boxes = tf.constant([[[0.1, 0.1, 0.9, 0.6]]] * 2, tf.float32)
  with tf.GradientTape() as tape:
    logits = model({'image': clip, 'boxes': boxes}, training=True)
    loss = tf.reduce_sum(tf.square(logits - 1.0))
  variables = model.trainable_variables
  grads = tape.gradient(loss, variables)
  tf_keras.optimizers.SGD(1.0).apply_gradients(zip(grads, variables))


def _backbone_values(model):
  return {w.name: w.numpy() for w in model.backbone.weights}


@pytest.mark.parametrize('fine_tune_from', ['res4', 'head'])
def test_stages_before_fine_tune_from_keep_their_weights(fine_tune_from):
  """Detectron2's FREEZE_AT: a training step changes no weight and no BN
  statistic of the stages before fine_tune_from, and changes those after."""
  params = _small(exp_factory.get_exp_config('cvrl_ava_detection'),
                  init_checkpoint='', random_backbone=True,
                  fine_tune_from=fine_tune_from)
  params.task.validate()
  model = task_factory.get_task(params.task).build_model()
  before = _backbone_values(model)
  _one_sgd_step(model)
  after = _backbone_values(model)
  stages = detection_cfg.FINE_TUNE_FROM
  frozen = stages[:stages.index(fine_tune_from)]
  changed = {n for n in before if not np.array_equal(before[n], after[n])}
  for name in before:
    stage = name.split('_')[0]
    if stage in frozen:
      assert name not in changed, name
  trained = {n for n in changed if n.split('_')[0] not in frozen}
  if fine_tune_from == 'head':
    assert not changed
  else:  # the test can tell: res4 and res5 weights and statistics move
    assert any(n.startswith('res4_') and 'moving_mean' in n for n in trained)
    assert any(n.startswith('res5_') and 'kernel' in n for n in trained)
  # The classifier trains in every case.
  assert model.classifier.trainable


def test_frozen_batch_norm_normalises_with_the_initial_statistics(tmp_path):
  """backbone_batch_norm='frozen' (Detectron2's FrozenBatchNorm2d): the
  backbone gives the same features in a training step as in inference, its
  BN statistics, scales and offsets never move, the convolutions train."""
  _, folder = pretrained_checkpoint(str(tmp_path / 'pretrain'), 0.125,
                                    (FRAMES, 32, 32, 3))
  params = _small(exp_factory.get_exp_config('cvrl_ava_detection'),
                  init_checkpoint=folder, backbone_batch_norm='frozen')
  task = task_factory.get_task(params.task)
  model = task.build_model()
  task.initialize(model)
  clip = tf.constant(np.random.default_rng(1).uniform(
      size=(2, FRAMES, HEIGHT, WIDTH, 3)), tf.float32)
  np.testing.assert_allclose(model.backbone(clip, training=True).numpy(),
                             model.backbone(clip, training=False).numpy(),
                             atol=1e-6)
  before = _backbone_values(model)
  _one_sgd_step(model)
  after = _backbone_values(model)
  changed = {n for n in before if not np.array_equal(before[n], after[n])}
  assert not {n for n in changed if '_bn' in n or 'bn/' in n
              or 'batch_norm' in n}, changed
  assert any('kernel' in n for n in changed)
  # The default trains BN: the same step moves the statistics.
  batch = task_factory.get_task(params.task.replace(
      backbone_batch_norm='batch'))
  model = batch.build_model()
  batch.initialize(model)
  before = _backbone_values(model)
  _one_sgd_step(model)
  after = _backbone_values(model)
  assert any(not np.array_equal(before[n], after[n])
             for n in before if 'moving_mean' in n)


def test_fine_tuning_fields_are_checked():
  params = _small(exp_factory.get_exp_config('cvrl_ava_detection'))
  with pytest.raises(base.ConfigError, match='task.fine_tune_from'):
    params.task.replace(fine_tune_from='res6').validate()
  with pytest.raises(base.ConfigError, match='task.backbone_batch_norm'):
    params.task.replace(backbone_batch_norm='sync').validate()


def test_box_transform_hand_computed():
  window = tf.constant([0.2, 0.1, 0.7, 0.6])
  boxes = tf.constant([[0.3, 0.2, 0.5, 0.4], [0.8, 0.8, 0.9, 0.9],
                       [0.1, 0.0, 0.4, 0.3]])
  moved, valid = dp.transform_boxes(boxes, window, tf.constant(False))
  np.testing.assert_allclose(moved[0], [0.2, 0.2, 0.6, 0.6], atol=1e-6)
  np.testing.assert_allclose(moved[2], [0.0, 0.0, 0.4, 0.4], atol=1e-6)
  assert valid.numpy().tolist() == [True, False, True]  # 2nd left the crop
  flipped, _ = dp.transform_boxes(boxes, window, tf.constant(True))
  np.testing.assert_allclose(flipped[0], [0.2, 0.4, 0.6, 0.8], atol=1e-6)


def test_clip_is_centred_on_the_keyframe():
  assert dp.clip_indices(8, 16, 4, 2).numpy().tolist() == [4, 6, 8, 10]
  assert dp.clip_indices(1, 16, 4, 2).numpy().tolist() == [0, 0, 1, 3]


def test_proposals_take_the_actions_of_the_box_they_match():
  gt = tf.constant([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]])
  labels = tf.constant([[1.0, 0.0], [0.0, 1.0]])
  proposals = tf.constant([[0.0, 0.0, 0.5, 0.45], [0.5, 0.5, 0.6, 0.6],
                           [0.55, 0.5, 1.0, 1.0]])
  got = dp.proposal_labels(proposals, gt, labels).numpy()
  assert got.tolist() == [[1, 0], [0, 0], [0, 1]]
  none = dp.proposal_labels(proposals, tf.zeros([0, 4]), tf.zeros([0, 2]))
  assert none.numpy().sum() == 0


@pytest.fixture(scope='module')
def records(tmp_path_factory):
  root = str(tmp_path_factory.mktemp('ava'))
  synthetic_ava.make_dataset(root, {'train': 2, 'val': 1}, seconds=7.0,
                             fps=10, height=HEIGHT, width=WIDTH, seed=1)
  notes = os.path.join(root, 'annotations')
  labels = ava_files.read_label_map(os.path.join(
      notes, 'ava_action_list_v2.2.pbtxt'))
  options = ava_keyframes.ClipOptions(fps=10, clip_frames=8, short_side=0)
  for split in ('train', 'val'):
    tasks, _ = ava_keyframes.read_split(
        split, os.path.join(notes, f'ava_{split}_v2.2.csv'),
        os.path.join(notes, f'ava_{split}_predicted_boxes.csv'), None,
        set(labels), os.path.join(root, 'movies'))
    job.run_plan(shards.plan_shards(tasks, 2), os.path.join(root, split),
                 options, 'local', 1, (), ava_keyframes.convert_chunk,
                 ava_keyframes.encode_chunk)
  return root


def _params(records, **task_fields):
  params = _small(exp_factory.get_exp_config('cvrl_ava_demo'),
                  init_checkpoint='', random_backbone=True, **task_fields)
  task = params.task
  task.train_data.input_path = f'{records}/train/train-*.tfrecord'
  task.validation_data.input_path = f'{records}/val/val-*.tfrecord'
  task.train_data.num_examples = 10
  notes = os.path.join(records, 'annotations')
  task.evaluated_label_map = os.path.join(
      notes, 'ava_action_list_v2.2_for_activitynet_2019.pbtxt')
  task.label_map = os.path.join(notes, 'ava_action_list_v2.2.pbtxt')
  task.groundtruth_csv = ''  # the records' boxes (tested apart below)
  task.excluded_timestamps = ''
  return params


def test_training_batches_same_seed_same_crop_every_frame(records):
  config = _params(records).task.train_data.replace(
      short_side_range=(40, 53), flip_prob=0.5, max_boxes=2)
  first = next(iter(dp.build_dataset(config)))
  again = next(iter(dp.build_dataset(config)))
  for key in first:
    np.testing.assert_array_equal(first[key].numpy(), again[key].numpy())
  assert first['image'].shape == (4, FRAMES, HEIGHT, WIDTH, 3)
  assert first['boxes'].shape == (4, 2, 4) and first['labels'].shape == (
      4, 2, 5)
  # Synthetic keyframes have 2-3 actors: the third of a keyframe is dropped
  # and counted, never silently.
  real = first['box_mask'].numpy().sum(axis=1)
  assert (real <= 2).all() and first['boxes_dropped'].numpy().max() <= 1
  # Same crop for every frame: a clip of one repeated frame stays constant.
  example = next(iter(tf.data.TFRecordDataset(
      tf.io.gfile.glob(config.input_path)).map(dp.parse_keyframe)))
  example['frames'] = tf.repeat(example['frames'][:1], 8)
  out = dp.process_keyframe(example, tf.constant([3, 4], tf.int64), config)
  frames = out['image'].numpy()
  assert np.abs(frames - frames[:1]).max() == 0


def _frame_with_rectangle(height, width, box_pixels):
  """A grey frame with one white rectangle (y1, x1, y2, x2 in pixels)."""
  frame = np.full((height, width, 3), 40, np.uint8)
  y1, x1, y2, x2 = box_pixels
  frame[y1:y2, x1:x2] = 255
  return frame


@pytest.mark.parametrize('seed', range(6))
def test_training_crop_keeps_the_aspect_and_moves_the_boxes(seed):
  # PySlowFast's AVA transform: short side scaled to U(256, 320), then a
  # square 224 crop. On a 256 x 455 frame (AVA's 16:9) a white 60 x 120
  # rectangle must stay twice as wide as high in the crop, and its box
  # must land where the rectangle is drawn.
  height, width, rect = 256, 455, (90, 160, 150, 280)
  config = detection_cfg.DetectionDataConfig(
      input_path='unused', num_frames=2, frame_stride=1,
      frame_size=(224, 224), short_side_range=(256, 320), flip_prob=0.5,
      num_classes=2)
  jpeg = tf.io.encode_jpeg(_frame_with_rectangle(height, width, rect),
                           quality=100)
  norm = (np.array(rect) / [height, width, height, width]).astype(np.float32)
  example = {'frames': tf.stack([jpeg] * 4),
             'keyframe_index': tf.constant(2), 'id': tf.constant('v,0902'),
             'gt_boxes': tf.constant(norm[None]),
             'label_ids': tf.constant([1]), 'label_boxes': tf.constant([0]),
             'proposals': tf.zeros([0, 4]), 'proposal_scores': tf.zeros([0])}
  out = dp.process_keyframe(example, tf.constant([seed, 7], tf.int64),
                            config)
  image = out['image'].numpy()[0]
  assert image.shape == (224, 224, 3)
  white = image.mean(axis=-1) > 0.6
  assert white.any(), 'the crop must show (part of) the rectangle'
  rows, cols = np.nonzero(white.any(axis=1))[0], np.nonzero(
      white.any(axis=0))[0]
  drawn = np.array([rows[0], cols[0], rows[-1] + 1, cols[-1] + 1], float)
  box = out['boxes'].numpy()[0] * 224
  # The box follows the rectangle (clipped to the crop), to 2 pixels.
  np.testing.assert_allclose(box, drawn, atol=2.0)
  assert out['box_mask'].numpy()[0] == 1.0
  # Whole inside the crop: 2:1 as in the frame (a squashing crop of the
  # same sides would give 1.77 x less).
  inside = (drawn[0] > 1 and drawn[1] > 1 and drawn[2] < 223
            and drawn[3] < 223)
  if inside:
    aspect = (drawn[3] - drawn[1]) / (drawn[2] - drawn[0])
    assert aspect == pytest.approx(2.0, rel=0.08)
  # Pixel scale is the same on both axes: the window covers 224 / scale
  # pixels of the frame each way.
  window = dp.crop_window(
      tf.random.experimental.stateless_split(
          tf.constant([seed, 7], tf.int64), 2)[0], (height, width), config)
  top, left, bottom, right = window.numpy()
  assert (bottom - top) * height == pytest.approx((right - left) * width,
                                                  rel=1e-4)
  short = 224 / ((bottom - top) * height) * height
  assert 256 - 1e-3 <= short <= 320 + 1e-3


def test_resumed_input_replays_the_uninterrupted_batches(records):
  """cvrl.tools.train sets train_data.start_step on a restart: the batches
  from there are those an uninterrupted job sees (crops and all)."""
  config = _params(records).task.train_data.replace(
      short_side_range=(40, 53), flip_prob=0.5)
  whole = list(dp.build_dataset(config).take(5))
  resumed = list(dp.build_dataset(config.replace(start_step=3)).take(2))
  for want, got in zip(whole[3:], resumed):
    for key in want:
      np.testing.assert_array_equal(want[key].numpy(), got[key].numpy())


def test_evaluation_counts_cut_ground_truth_and_proposals(records):
  config = _params(records).task.validation_data.replace(max_boxes=1)
  example = next(iter(tf.data.TFRecordDataset(
      tf.io.gfile.glob(config.input_path)).map(dp.parse_keyframe)))
  out = dp.process_keyframe(example, tf.constant([0, 0], tf.int64), config)
  gt = int(tf.shape(example['gt_boxes'])[0])
  kept = int(tf.reduce_sum(tf.cast(
      example['proposal_scores'] >= config.proposal_score_threshold,
      tf.int32)))
  assert gt >= 2  # synthetic keyframes have 2-3 actors
  assert int(out['boxes_dropped']) == (gt - 1) + max(0, kept - 1)


def test_out_of_range_action_fails_naming_the_keyframe(records):
  config = _params(records).task.train_data.replace(num_classes=3)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r'keyframe .*syntr\d+,\d+.*: action ids'):
    next(iter(dp.build_dataset(config)))


def test_task_trains_and_reports_map_per_class(records, tmp_path):
  params = _params(records)
  task = task_factory.get_task(params.task, logging_dir=str(tmp_path))
  model = task.build_model()
  optimizer = tf_keras.optimizers.SGD(0.05)
  batches = iter(task.build_inputs(params.task.train_data))
  metrics = task.build_metrics()
  losses = [float(task.train_step(next(batches), model, optimizer,
                                  metrics)['loss']) for _ in range(3)]
  assert all(np.isfinite(losses))
  state = None
  for batch in task.build_inputs(params.task.validation_data):
    logs = task.validation_step(batch, model, task.build_metrics(False))
    state = task.aggregate_logs(state, {k: (v,) for k, v in logs.items()})
  result = task.reduce_aggregated_logs(state, tf.constant(3))
  assert 0.0 <= result['mAP'] <= 1.0
  assert set(k for k in result if k.startswith('AP/')) <= {
      'AP/walk left', 'AP/walk right', 'AP/jump', 'AP/wave'}
  table = (tmp_path / 'ava_ap_step_3.csv').read_text().splitlines()
  assert table[0].startswith('class_id') and len(table) == 1 + 4 + 1
  # The ground truth the evaluator saw is the records' (evaluated actions).
  groundtruth, detections = task.detections_and_truth(state)
  rows, _ = ava_files.read_boxes(os.path.join(
      records, 'annotations', 'ava_val_v2.2.csv'))
  assert sorted((k, c) for k, _, c in groundtruth) == sorted(
      (ava_files.keyframe_key(*r.keyframe), r.action_id) for r in rows)
  written = (tmp_path / 'ava_detections_step_3.csv').read_text().splitlines()
  assert len(written) == len(detections) > 0
  # The CSV, evaluated against the annotation file as a user would
  # (cvrl.tools.ava_eval), gives the task's mAP.
  result_csv = run_module(
      'cvrl.tools.ava_eval', f'--groundtruth={records}/annotations/'
      'ava_val_v2.2.csv', f'--detections={tmp_path}/ava_detections_step_3.csv',
      f'--label_map={params.task.evaluated_label_map}')
  csv_map = float(re.search(r'frame mAP@0.5 ([\d.]+)',
                            result_csv.stdout).group(1))
  assert csv_map == pytest.approx(result['mAP'], abs=1e-3)


def _with_lost_box(records, tmp_path):
  """The val annotation CSV plus one box on a movie with no record."""
  csv_path = tmp_path / 'ava_val_v2.2.csv'
  original = open(os.path.join(records, 'annotations',
                               'ava_val_v2.2.csv')).read()
  csv_path.write_text(original + 'lost_movie,0902,0.1,0.1,0.5,0.9,1,0\n')
  return str(csv_path)


def _evaluated(params, tmp_path):
  """(task, aggregated state) of one evaluation of an untrained detector."""
  task = task_factory.get_task(params.task, logging_dir=str(tmp_path))
  model = task.build_model()
  state = None
  for batch in task.build_inputs(params.task.validation_data):
    logs = task.validation_step(batch, model, task.build_metrics(False))
    state = task.aggregate_logs(state, {k: (v,) for k, v in logs.items()})
  return task, state


def test_ground_truth_from_the_annotation_csv_counts_boxes_without_record(
    records, tmp_path):
  # The official evaluator reads the ground truth from the CSV: a box on a
  # movie that has no record (not downloaded, failed to convert) is a miss.
  csv_path = _with_lost_box(records, tmp_path)
  task, state = _evaluated(_params(records), tmp_path)
  from_records = task.reduce_aggregated_logs(state, tf.constant(1))
  assert 'groundtruth_without_record' not in from_records
  task.task_config.groundtruth_csv = csv_path
  from_csv = task.reduce_aggregated_logs(state, tf.constant(2))
  assert from_csv['groundtruth_without_record'] == 1.0
  per_class = {}
  for step in (1, 2):
    rows = (tmp_path / f'ava_ap_step_{step}.csv').read_text().splitlines()
    per_class[step] = {r.split(',')[0]: int(r.split(',')[3])
                       for r in rows[1:]}
  # Action 1 has one more ground-truth box, and nothing else changed.
  assert per_class[2]['1'] == per_class[1]['1'] + 1
  assert {k: v for k, v in per_class[2].items() if k not in ('1', 'mean')} \
      == {k: v for k, v in per_class[1].items() if k not in ('1', 'mean')}


def test_xla_compiled_train_step(records):
  params = _params(records, jit_compile=True)
  task = task_factory.get_task(params.task)
  model = task.build_model()
  batch = next(iter(task.build_inputs(params.task.train_data)))
  logs = task.train_step(batch, model, tf_keras.optimizers.SGD(0.01), [])
  assert np.isfinite(float(logs['loss']))


def test_paper_schedule_steps_at_epochs_8_and_11():
  params = exp_factory.get_exp_config('cvrl_ava_detection')
  launch.prepare(params, precision.Devices(tpu=True))
  per_epoch = 210_634 / 32
  assert params.trainer.train_steps == round(12 * per_epoch)
  lr = params.trainer.optimizer_config.learning_rate.stepwise
  assert lr.boundaries == [round(8 * per_epoch), round(11 * per_epoch)]
  assert lr.values == pytest.approx([0.2, 0.02, 0.002])
  assert params.task.train_data.global_batch_size == 32
  assert params.task.model.backbone.cvrl_r3d.res5_dilation == 2
  assert params.task.validation_data.proposal_score_threshold == 0.8
  for name in ('cvrl_ava_detection_inflated', 'cvrl_ava_detection_random'):
    exp_factory.get_exp_config(name).task.validate()


def _map_of(task, model, batches, run=None, local=None):
  state = None
  for batch in batches:
    if run is None:
      logs = {k: (v,) for k, v in task.validation_step(batch, model).items()}
    else:
      logs = {k: local(v) for k, v in run(batch).items()}
    state = task.aggregate_logs(state, logs)
  return task.reduce_aggregated_logs(state), task.detections_and_truth(state)


def test_two_replicas_give_the_single_device_map(records, mirrored_strategy):
  params = _params(records)
  config = params.task.validation_data
  # 4 keyframes: one padded batch of 8, 4 real examples for one replica and
  # only padding for the other.
  assert sum(1 for _ in tf.data.TFRecordDataset(
      tf.io.gfile.glob(config.input_path))) == 4
  task = task_factory.get_task(params.task)
  model = task.build_model()
  single, single_sets = _map_of(task, model, task.build_inputs(config))
  with mirrored_strategy.scope():
    replicated = task.build_model()  # same init_seed: the same weights
  for a, b in zip(model.weights, replicated.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  batches = mirrored_strategy.distribute_datasets_from_function(
      lambda context: task.build_inputs(config, context))
  both, both_sets = _map_of(
      task, replicated, batches,
      # In a tf.function, as Model Garden's trainer runs eval steps.
      run=tf.function(lambda b: mirrored_strategy.run(
          task.validation_step, args=(b, replicated))),
      local=mirrored_strategy.experimental_local_results)
  assert sorted(single_sets[0]) == sorted(both_sets[0])
  assert len(single_sets[1]) == len(both_sets[1])
  assert both['mAP'] == pytest.approx(single['mAP'], abs=1e-6)


@pytest.mark.parametrize('name', ['cvrl_ava_detection',
                                  'cvrl_ava_detection_inflated',
                                  'cvrl_ava_detection_random'])
def test_runlocal_smoke_test_of_the_paper_recipes(name, records, tmp_path):
  """experiments/runlocal_detection.yaml after each recipe's own YAML: the
  job start checks the record counts as a training job does, and the
  recipe's AVA size (210,634 keyframes) does not stop a smoke test on a
  few keyframes, whose steps are explicit; then two train steps and a
  validation step on convert_ava records (R3D-14 for time)."""
  paths = (f'task.train_data.input_path={records}/train/*.tfrecord,'
           f'task.validation_data.input_path={records}/val/*.tfrecord,'
           'task.model.backbone.cvrl_r3d.depth=14,'
           'task.model.backbone.cvrl_r3d.width_multiplier=0.125,'
           'task.model.head.num_classes=5,task.train_data.num_classes=5,'
           'task.validation_data.num_classes=5,task.evaluated_label_map=,'
           'task.label_map=,task.groundtruth_csv=,task.excluded_timestamps=')
  recipe = name.replace('cvrl_', '') + '.yaml'
  params = launch.parse_experiment(
      name, [os.path.join(REPO_ROOT, 'experiments', recipe),
             os.path.join(REPO_ROOT, 'experiments',
                          'runlocal_detection.yaml')], paths)
  assert params.task.train_data.num_examples > 200_000  # the recipe's
  if not params.task.random_backbone:
    _, folder = pretrained_checkpoint(str(tmp_path / 'ckpt'), 0.125,
                                      (FRAMES, 32, 32, 3))
    params.task.init_checkpoint = folder
  lines = launch.prepare(params, precision.Devices(),
                         check_sizes=('train_data', 'validation_data'))
  counted = params.task.train_data.num_examples
  assert 0 < counted < 100
  assert any(f'num_examples={counted} counted (the recipe says' in line and
             'are explicit' in line for line in lines), lines
  params.validate()
  assert params.trainer.train_steps == 2
  task = task_factory.get_task(params.task, logging_dir=str(tmp_path))
  model = task.build_model()
  task.initialize(model)
  optimizer = task.create_optimizer(params.trainer.optimizer_config,
                                    params.runtime)
  batches = iter(task.build_inputs(params.task.train_data))
  for _ in range(2):
    logs = task.train_step(next(batches), model, optimizer,
                           task.build_metrics())
    assert np.isfinite(float(logs['loss']))
  validation = next(iter(task.build_inputs(params.task.validation_data)))
  logs = task.validation_step(validation, model, task.build_metrics(False))
  result = task.reduce_aggregated_logs(task.aggregate_logs(
      None, {k: (v,) for k, v in logs.items()}))
  assert 0.0 <= result['mAP'] <= 1.0


def test_excluded_keyframes_of_the_annotation_csv_are_not_misses(records,
                                                                 tmp_path):
  # The official evaluator's -e: boxes on an excluded keyframe (which has
  # no record) are skipped, not counted as misses.
  excluded = tmp_path / 'excluded.csv'
  excluded.write_text('lost_movie,0902\n')
  params = _params(records)
  params.task.groundtruth_csv = _with_lost_box(records, tmp_path)
  params.task.excluded_timestamps = str(excluded)
  task, state = _evaluated(params, tmp_path)
  result = task.reduce_aggregated_logs(state, tf.constant(1))
  assert result['groundtruth_without_record'] == 0.0
