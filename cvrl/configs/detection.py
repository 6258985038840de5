"""AVA action detection (paper 4.1 / Table 5) as typed configs and experiments.

Following SlowFast and Long-Term Feature Banks, as the paper does: the R3D of
Table 1 with res5 at spatial stride 1 and dilation 2 (output stride 16),
temporal average pooling of res5, RoIAlign 7x7 on each person box of the
keyframe, spatial max pooling, dropout, a linear layer and a sigmoid per
action (80 classes; 60 evaluated). Trained on the ground-truth boxes,
tested on person proposals scoring >= 0.8; frame mAP at IoU 0.5. 1x
schedule: 12 epochs, lr 0.2 divided by 10 at epochs 8 and 11, 32 clips a
batch, all layers fine-tuned.

Records: `tfrecords_tools.convert_ava` (one per keyframe). Launch:
  python -m cvrl.tools.train --experiment=cvrl_ava_detection \
      --mode=train_and_eval --model_dir=DIR --config_file=experiments/ava_detection.yaml
"""

import dataclasses
from typing import Tuple

from official.core import config_definitions as cfg
from official.core import exp_factory
from official.modeling import hyperparams
from official.modeling import optimization

from cvrl.configs import base
from cvrl.configs import modeling
from cvrl.configs import schedule
from cvrl.configs import strategy

AVA_NUM_CLASSES = 80
AVA_TRAIN_KEYFRAMES = 210_634  # paper: "211k training"
AVA_VAL_KEYFRAMES = 57_371     # paper: "57k validation"
# task.fine_tune_from: the backbone's stages in order, then the head alone.
FINE_TUNE_FROM = ('stem', 'res2', 'res3', 'res4', 'res5', 'head')
BACKBONE_BATCH_NORM = ('batch', 'frozen')


@dataclasses.dataclass
class DetectionDataConfig(hyperparams.Config):
  """Keyframe records -> clips, boxes and labels (`detection_pipeline`).

  Training, as PySlowFast's AVA loader: the frame scaled so that its short
  side is a random size in `short_side_range` (pixels; aspect kept), a
  random `frame_size` crop of it (the paper's 224 x 224), flipped with
  `flip_prob`; boxes move with the crop, are clipped to it, and a box left
  with no area is dropped (mask 0). Testing: the whole frame resized to
  `frame_size` (256 x 448 for AVA's 16:9 movies).
  Boxes: ground truth when training; proposals scoring at least
  `proposal_score_threshold` when testing (the ground truth rides along
  for the evaluator). At most `max_boxes` per keyframe (static shapes);
  more are dropped and counted (metric `boxes_dropped`; in evaluation the
  ground-truth boxes cut are counted too).
  """
  input_path: str = ''
  is_training: bool = True
  global_batch_size: int = 32
  num_examples: int = 0  # <= 0: counted at job start (keyframe records)
  check_num_examples: bool = True
  num_frames: int = 32
  frame_stride: int = 2
  frame_size: Tuple[int, int] = (224, 224)
  max_boxes: int = 32
  use_proposals: bool = False
  proposal_score_threshold: float = 0.8
  short_side_range: Tuple[int, int] = (256, 320)
  flip_prob: float = 0.5
  num_classes: int = AVA_NUM_CLASSES
  shuffle_buffer_size: int = 256
  cycle_length: int = 16
  seed: int = 0
  repeat: bool = True
  drop_remainder: bool = True
  zero_centering: bool = False
  dtype: str = 'float32'
  # Set by cvrl.tools.train when a job resumes at step k: the pipeline
  # starts at the stream position of batch k (reading at most one epoch to
  # get there), so a restarted job sees the batches an uninterrupted one
  # would.
  start_step: int = 0

  def validate(self, prefix: str) -> None:
    base.check(bool(self.input_path), f'{prefix}.input_path',
               self.input_path, 'a glob of convert_ava records')
    base.check(self.num_frames >= 1 and self.frame_stride >= 1,
               f'{prefix}.num_frames', (self.num_frames, self.frame_stride),
               'num_frames >= 1 and frame_stride >= 1')
    base.check(self.max_boxes >= 1, f'{prefix}.max_boxes', self.max_boxes,
               '>= 1')
    low, high = self.short_side_range
    base.check(min(self.frame_size) <= low <= high,
               f'{prefix}.short_side_range', self.short_side_range,
               f'low <= high, both >= the crop\'s short side '
               f'{min(self.frame_size)} (frame_size {self.frame_size})')
    base.check(0.0 <= self.flip_prob <= 1.0, f'{prefix}.flip_prob',
               self.flip_prob, 'in [0, 1]')
    base.check(self.global_batch_size >= 1, f'{prefix}.global_batch_size',
               self.global_batch_size, '>= 1')
    base.check(self.start_step >= 0, f'{prefix}.start_step', self.start_step,
               '>= 0')


@dataclasses.dataclass
class DetectionHeadConfig(hyperparams.Config):
  num_classes: int = AVA_NUM_CLASSES
  roi_size: int = 7
  dropout_rate: float = 0.5


@dataclasses.dataclass
class DetectionModelConfig(modeling.EncoderConfig):
  head: DetectionHeadConfig = dataclasses.field(
      default_factory=DetectionHeadConfig)

  def validate(self) -> None:
    super().validate()
    base.check(self.head.num_classes >= 1, 'model.head.num_classes',
               self.head.num_classes, '>= 1')
    base.check(0.0 <= self.head.dropout_rate < 1.0, 'model.head.dropout_rate',
               self.head.dropout_rate, 'in [0, 1)')


def _dilated_r3d50() -> DetectionModelConfig:
  model = DetectionModelConfig()
  model.backbone.cvrl_r3d.res5_dilation = 2
  return model


@dataclasses.dataclass
class DetectionTaskConfig(cfg.TaskConfig):
  """Action detection on an R3D backbone (see the module doc)."""
  model: DetectionModelConfig = dataclasses.field(
      default_factory=_dilated_r3d50)
  train_data: DetectionDataConfig = dataclasses.field(
      default_factory=DetectionDataConfig)
  validation_data: DetectionDataConfig = dataclasses.field(
      default_factory=lambda: DetectionDataConfig(
          is_training=False, use_proposals=True, frame_size=(256, 448),
          repeat=False, drop_remainder=False, global_batch_size=32))
  # Exactly one: a checkpoint to restore the backbone from (pretraining or
  # inflation output), or random_backbone.
  random_backbone: bool = False
  # The evaluated classes (AVA: the 60 of the ActivityNet 2019 list), as a
  # label map (.pbtxt); empty: every class of model.head.num_classes.
  evaluated_label_map: str = ''
  # Names for the per-class AP table (the full .pbtxt); optional.
  label_map: str = ''
  # Keyframes the evaluation skips (AVA's excluded timestamps CSV); optional:
  # convert_ava already writes no record for them.
  excluded_timestamps: str = ''
  # The annotation CSV of the evaluated split (ava_val_v2.2.csv): when set,
  # the evaluation's ground truth is read from it, as the official
  # evaluator does, so boxes on keyframes that have no record (a movie that
  # failed to download or convert) count as misses and are reported
  # (metric groundtruth_without_record); empty: the records' boxes. Give
  # excluded_timestamps with it, as the official evaluator's -e: the
  # keyframes it lists have no record and must not count as misses.
  groundtruth_csv: str = ''
  # Which backbone layers fine-tuning trains, as Detectron2's FREEZE_AT:
  # the stages before `fine_tune_from` keep their initial weights and run
  # in inference mode; 'stem' trains everything (PySlowFast's AVA recipe,
  # the paper's), 'head' trains only the detector's classifier.
  fine_tune_from: str = 'stem'
  # 'batch': every backbone BN normalises with batch statistics and learns
  # (PySlowFast's AVA recipe); 'frozen': every backbone BN keeps its
  # initial statistics, scale and offset (Detectron2's FrozenBatchNorm2d,
  # its default for fine-tuning with small per-device batches).
  backbone_batch_norm: str = 'batch'
  l2_weight_decay: float = 1e-7
  init_seed: int = 0
  jit_compile: bool = False

  def validate(self) -> None:
    self.model.validate()
    base.check(bool(self.init_checkpoint) != self.random_backbone,
               'task.init_checkpoint', self.init_checkpoint,
               'a pretrained checkpoint (file or folder), or '
               'task.random_backbone=true, not both')
    base.check(self.train_data.num_classes == self.model.head.num_classes,
               'task.train_data.num_classes', self.train_data.num_classes,
               f'model.head.num_classes ({self.model.head.num_classes})')
    stride = self.model.backbone.cvrl_r3d.output_stride
    for name, data in (('task.train_data', self.train_data),
                       ('task.validation_data', self.validation_data)):
      base.check(all(s % stride == 0 for s in data.frame_size),
                 f'{name}.frame_size', data.frame_size,
                 f'multiples of the backbone\'s output stride {stride} '
                 '(RoIAlign maps boxes by it)')
    self.train_data.validate('task.train_data')
    base.check(self.fine_tune_from in FINE_TUNE_FROM, 'task.fine_tune_from',
               self.fine_tune_from, f'one of {FINE_TUNE_FROM}')
    base.check(self.backbone_batch_norm in BACKBONE_BATCH_NORM,
               'task.backbone_batch_norm', self.backbone_batch_norm,
               f'one of {BACKBONE_BATCH_NORM}')
    base.check(self.l2_weight_decay >= 0, 'task.l2_weight_decay',
               self.l2_weight_decay, '>= 0')


def one_x_schedule(base_lr: float) -> optimization.OptimizationConfig:
  """SGD momentum 0.9, lr divided by 10 at epochs 8 and 11 of 12 (the
  boundaries, in steps, are set from trainer.decay_epochs at job start)."""
  return optimization.OptimizationConfig({
      'optimizer': {'type': 'sgd', 'sgd': {'momentum': 0.9}},
      'learning_rate': {'type': 'stepwise', 'stepwise': {
          'boundaries': [0, 0],
          'values': [base_lr, base_lr / 10, base_lr / 100]}},
  })


def ava_detection(init_checkpoint: str = '', random_backbone: bool = False
                  ) -> cfg.ExperimentConfig:
  """R3D-50 (res5 dilated), batch 32, lr 0.2, 12 epochs, on AVA v2.2."""
  root = f'{base.BUCKET_ROOT}/ava/tfrecords'
  task = DetectionTaskConfig(
      init_checkpoint=init_checkpoint, random_backbone=random_backbone,
      train_data=DetectionDataConfig(
          input_path=f'{root}/train/train-*.tfrecord', global_batch_size=32,
          num_examples=AVA_TRAIN_KEYFRAMES, dtype='auto'),
      validation_data=DetectionDataConfig(
          input_path=f'{root}/val/val-*.tfrecord', is_training=False,
          use_proposals=True, frame_size=(256, 448), repeat=False,
          drop_remainder=False, global_batch_size=32, dtype='auto',
          num_examples=AVA_VAL_KEYFRAMES),
      evaluated_label_map=(f'{base.BUCKET_ROOT}/ava/annotations/'
                           'ava_action_list_v2.2_for_activitynet_2019.pbtxt'),
      label_map=f'{base.BUCKET_ROOT}/ava/annotations/'
                'ava_action_list_v2.2.pbtxt',
      groundtruth_csv=f'{base.BUCKET_ROOT}/ava/annotations/ava_val_v2.2.csv',
      excluded_timestamps=(f'{base.BUCKET_ROOT}/ava/annotations/'
                           'ava_val_excluded_timestamps_v2.2.csv'))
  return cfg.ExperimentConfig(
      task=task,
      runtime=strategy.RuntimeConfig(mixed_precision_dtype='auto'),
      trainer=schedule.TrainerConfig(
          epochs=12, warmup_epochs=0, decay_epochs=(8, 11),
          # mAP every 2 of the 12 epochs (as PySlowFast's AVA configs
          # evaluate periodically), so a run shows its curve and a failing
          # evaluation shows up after 2 epochs, not at the end.
          checkpoint_epochs=1, validation_epochs=2, steps_per_loop=500,
          summary_interval=500, validation_steps=-1,
          optimizer_config=one_x_schedule(0.2), max_to_keep=3,
          best_checkpoint_eval_metric='mAP',
          best_checkpoint_metric_comp='higher',
          best_checkpoint_export_subdir='best'),
      restrictions=['task.train_data.is_training != None'])


@exp_factory.register_config_factory('cvrl_ava_detection')
def cvrl_ava_detection() -> cfg.ExperimentConfig:
  """Paper Table 5, CVRL row (R3D-50 pretrained on K400: 16.3 mAP).

  python -m cvrl.tools.train --experiment=cvrl_ava_detection --mode=train_and_eval \\
      --config_file=experiments/ava_detection.yaml --model_dir=DIR --tpu=TPU
  """
  return ava_detection(init_checkpoint=f'{base.BUCKET_ROOT}/cvrl/'
                       'pretrain_k400')


@exp_factory.register_config_factory('cvrl_ava_detection_inflated')
def cvrl_ava_detection_inflated() -> cfg.ExperimentConfig:
  """Table 5, ImageNet-inflated row (14.0): `cvrl.tools.inflate_imagenet`
  output as the checkpoint.

  python -m cvrl.tools.train --experiment=cvrl_ava_detection_inflated --mode=train_and_eval \\
      --config_file=experiments/ava_detection_inflated.yaml --model_dir=DIR --tpu=TPU
  """
  return ava_detection(init_checkpoint=f'{base.BUCKET_ROOT}/cvrl/'
                       'inflated_imagenet_r3d50')


@exp_factory.register_config_factory('cvrl_ava_detection_random')
def cvrl_ava_detection_random() -> cfg.ExperimentConfig:
  """Table 5, random-initialisation row (6.9).

  python -m cvrl.tools.train --experiment=cvrl_ava_detection_random --mode=train_and_eval \\
      --config_file=experiments/ava_detection_random.yaml --model_dir=DIR --tpu=TPU
  """
  return ava_detection(random_backbone=True)
