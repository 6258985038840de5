"""The CPU demo's experiments (`scripts/demo.sh`): the paper's method at toy
scale on the synthetic motion dataset of `tfrecords_tools.make_synthetic`.

Everything that differs from the paper's recipes is here, each with why:
R3D-14 at width 0.25 on 16 x 32 x 32 clips, SimCLR's small-image colour
jitter and no blur, no flips (the classes include left/right motions), the
mean-over-anchors loss its lr was tuned with, and a batch-normalised linear
probe.
"""

from official.core import config_definitions as cfg
from official.core import exp_factory

from cvrl.configs import classification
from cvrl.configs import modeling
from cvrl.configs import pretrain
from cvrl.configs import schedule
from cvrl.configs import strategy
from cvrl.configs import video_data


@exp_factory.register_config_factory('cvrl_pretrain_demo')
def cvrl_pretrain_demo() -> cfg.ExperimentConfig:
  """Small CPU run on the synthetic dataset of `make_synthetic`.

  python -m cvrl.tools.train --experiment=cvrl_pretrain_demo --mode=train_and_eval \
      --model_dir=demo_output/pretrain

  The paper's method at toy scale: R3D-14 at width 0.25, 16 x 32 x 32 clips.
  At 32 pixels the colour jitter is SimCLR's small-image setting (strength
  0.5: 0.4/0.4/0.4/0.1) and blur is off (its kernel would be 3 pixels), as
  SimCLR does for CIFAR; at paper strength the loss stays at chance for the
  first 400 steps on this data.
  """
  # num_examples 0: the records are counted when the job starts, so the
  # demo's recipe follows whatever dataset it is pointed at.
  batch, examples = 16, 0
  model = modeling.CVRLModelConfig()
  model.backbone.cvrl_r3d.depth = 14
  model.backbone.cvrl_r3d.width_multiplier = 0.25
  model.norm_activation.use_sync_bn = False
  model.projection_head.hidden_dim = 256
  # 16 x 32 x 32 clips: 2x faster than 8 x 48 x 48 per example on CPU
  # and keeps the whole motion (tf_keras Conv3D is slow at 8 x 32 x 32).
  data = dict(num_frames=16, frame_stride=2, crop_size=32,
              global_batch_size=batch, shuffle_buffer_size=64,
              cycle_length=4)
  # No flips: the synthetic classes include left/right and clockwise/
  # anticlockwise motions, which a horizontal flip swaps (a flipped view
  # would teach the encoder to ignore the direction of motion).
  small_image_view = dict(brightness=0.4, contrast=0.4, saturation=0.4,
                          hue=0.1, blur_prob=0.0, flip_prob=0.0)
  spatial = video_data.SpatialAugmentationConfig(
      view_1=video_data.ViewAugmentationConfig(**small_image_view),
      view_2=video_data.ViewAugmentationConfig(**small_image_view))
  task = pretrain.PretrainTaskConfig(
      model=model,
      # The demo's lr 0.3 was tuned with the mean over anchors.
      losses=pretrain.ContrastiveLossConfig(reduction='mean'),
      train_data=video_data.VideoDataConfig(
          mode='pretrain', is_training=True, num_examples=examples,
          input_path='demo_output/tfrecords/train/train-*.tfrecord', seed=0,
          spatial=spatial, **data),
      validation_data=video_data.VideoDataConfig(
          mode='pretrain', is_training=False, repeat=False,
          input_path='demo_output/tfrecords/val/val-*.tfrecord', seed=1,
          spatial=spatial, **data))
  return cfg.ExperimentConfig(
      task=task,
      runtime=strategy.RuntimeConfig(),
      trainer=schedule.TrainerConfig(
          epochs=30, warmup_epochs=2, steps_per_loop=15, summary_interval=15,
          checkpoint_interval=75, validation_interval=75,
          validation_steps=-1, optimizer_config=pretrain.sgd_cosine(0.3),
          max_to_keep=2),
      restrictions=['task.train_data.is_training != None'])


@exp_factory.register_config_factory('cvrl_linear_eval_demo')
def cvrl_linear_eval_demo() -> cfg.ExperimentConfig:
  """Linear evaluation of the demo's pretrained R3D-14 on the synthetic set.

  python -m cvrl.tools.train --experiment=cvrl_linear_eval_demo \
      --mode=train_and_eval --model_dir=demo_output/linear_cvrl \
      --params_override=task.init_checkpoint=demo_output/pretrain
  (task.init_checkpoint='',task.random_backbone=true: the random encoder).
  """
  demo = cvrl_pretrain_demo()
  data = demo.task.train_data
  batch, examples = 16, data.num_examples
  model = classification.ClassificationModelConfig(
      backbone=demo.task.model.backbone,
      norm_activation=demo.task.model.norm_activation,
      # The small encoder's features on 32-pixel clips are nearly collinear
      # (mean cosine 0.997), so an l2-normalised feature leaves ~1e-3 of
      # signal for SGD to find: the demo probes batch-normalised features
      # (still a linear classifier, MAE's probe) instead.
      head=classification.ClassifierHeadConfig(num_classes=8, normalize_features=False,
                                batch_norm_features=True))
  # Whole frames, no flip: at 32 pixels a crop loses the moving object, and
  # a flip swaps the left/right and cw/ccw classes.
  common_data = dict(num_frames=data.num_frames,
                     frame_stride=data.frame_stride,
                     crop_size=data.crop_size, num_classes=8,
                     cycle_length=4,
                     train_view=video_data.crop_and_flip_only(
                         area_range=(1.0, 1.0)).replace(
                             flip_prob=0.0, crop_aspect_range=(1.0, 1.0)))
  task = classification.ClassificationTaskConfig(
      model=model,
      train_data=video_data.VideoDataConfig(
          mode='train', is_training=True, num_examples=examples,
          global_batch_size=batch, shuffle_buffer_size=64, seed=0,
          input_path='demo_output/tfrecords/train/train-*.tfrecord',
          **common_data),
      validation_data=video_data.VideoDataConfig(
          mode='test', is_training=False, repeat=False, drop_remainder=False,
          global_batch_size=16, num_test_clips=4, num_test_crops=1,
          test_short_side=data.crop_size, seed=1,
          input_path='demo_output/tfrecords/val/val-*.tfrecord',
          **common_data),
      init_checkpoint='demo_output/pretrain')
  return cfg.ExperimentConfig(
      task=task,
      runtime=strategy.RuntimeConfig(),
      trainer=schedule.TrainerConfig(
          epochs=30, checkpoint_epochs=30, validation_epochs=30,
          steps_per_loop=225, summary_interval=225, validation_steps=-1,
          optimizer_config=pretrain.sgd_cosine(0.003), max_to_keep=1),
      restrictions=['task.train_data.is_training != None'])


@exp_factory.register_config_factory('cvrl_ava_demo')
def cvrl_ava_demo() -> cfg.ExperimentConfig:
  """AVA-style detection on `make_synthetic_ava` (scripts/demo_detection.sh).

  python -m cvrl.tools.train --experiment=cvrl_ava_demo --mode=train_and_eval \
      --model_dir=demo_output/ava_cvrl \
      --params_override=task.init_checkpoint=demo_output/pretrain
  (task.init_checkpoint='',task.random_backbone=true: from random weights).

  The demo's R3D-14 w0.25 with res5 dilated, 16 frames at 10 fps (1.6 s
  around the keyframe) at 64 x 96; the paper's head and 1x schedule, lr
  scaled to batch 8; no flips (walk left / walk right are classes).
  """
  from cvrl.configs import detection  # pylint: disable=g-import-not-at-top
  pretrain_model = cvrl_pretrain_demo().task.model
  model = detection.DetectionModelConfig(
      backbone=pretrain_model.backbone,
      norm_activation=pretrain_model.norm_activation,
      head=detection.DetectionHeadConfig(num_classes=5))
  model.backbone.cvrl_r3d.res5_dilation = 2
  root = 'demo_output/ava'
  data = dict(num_frames=16, frame_stride=1, frame_size=(64, 96),
              num_classes=5, max_boxes=8, cycle_length=4, flip_prob=0.0)
  task = detection.DetectionTaskConfig(
      model=model, init_checkpoint='demo_output/pretrain',
      train_data=detection.DetectionDataConfig(
          input_path=f'{root}/tfrecords/train/train-*.tfrecord',
          global_batch_size=8, num_examples=0, shuffle_buffer_size=64,
          short_side_range=(64, 80), **data),
      validation_data=detection.DetectionDataConfig(
          input_path=f'{root}/tfrecords/val/val-*.tfrecord',
          is_training=False, use_proposals=True, repeat=False,
          drop_remainder=False, global_batch_size=8, **data),
      evaluated_label_map=(f'{root}/annotations/'
                           'ava_action_list_v2.2_for_activitynet_2019.pbtxt'),
      label_map=f'{root}/annotations/ava_action_list_v2.2.pbtxt',
      groundtruth_csv=f'{root}/annotations/ava_val_v2.2.csv',
      excluded_timestamps=(f'{root}/annotations/'
                           'ava_val_excluded_timestamps_v2.2.csv'))
  return cfg.ExperimentConfig(
      task=task,
      runtime=strategy.RuntimeConfig(),
      trainer=schedule.TrainerConfig(
          epochs=12, decay_epochs=(8, 11), steps_per_loop=15,
          summary_interval=15, checkpoint_epochs=12, validation_epochs=12,
          validation_steps=-1,
          optimizer_config=detection.one_x_schedule(0.05), max_to_keep=1,
          best_checkpoint_eval_metric='mAP',
          best_checkpoint_metric_comp='higher',
          best_checkpoint_export_subdir='best'),
      restrictions=['task.train_data.is_training != None'])
