"""Evaluation protocols of paper section 4.1 as typed configs and experiments.

One task, `ClassificationTaskConfig`, covers them all; what differs is data:
  linear evaluation    freeze_backbone, normalize_features, init_checkpoint
  fine-tuning          init_checkpoint (semi-supervised, UCF-101, HMDB-51)
  supervised / random  random_backbone (from scratch; the random-encoder
                       baseline is linear evaluation with random_backbone)

Launch any experiment below with
  python -m cvrl.tools.train --experiment=NAME --mode=train_and_eval \
      --model_dir=DIR --params_override=task.init_checkpoint=PRETRAIN_DIR
(plus --config_file=experiments/....yaml where one exists). Training views:
one 32-frame clip at stride 2, crop and flip; testing: 10 clips x 3 crops
per video at short side 256, softmax averaged over the 30 views.
"""

import dataclasses
from typing import Optional

from official.core import config_definitions as cfg
from official.core import exp_factory
from official.modeling import hyperparams

from cvrl.configs import base
from cvrl.configs import modeling
from cvrl.configs import pretrain
from cvrl.configs import schedule
from cvrl.configs import strategy
from cvrl.configs import video_data

@dataclasses.dataclass
class ClassifierHeadConfig(hyperparams.Config):
  num_classes: int = 400
  # l2-normalise the pooled feature before the linear layer (paper: linear
  # evaluation yes, supervised training no).
  normalize_features: bool = True
  # Then a parameter-free batch norm (MAE's linear probe): the classifier
  # stays linear in the feature, but SGD no longer has to find small
  # discriminative directions beside a large shared component; converges in
  # a few epochs. Off in the paper's recipes, on in the CPU demo.
  batch_norm_features: bool = False
  dropout_rate: float = 0.0


@dataclasses.dataclass
class ClassificationModelConfig(modeling.EncoderConfig):
  head: ClassifierHeadConfig = dataclasses.field(
      default_factory=ClassifierHeadConfig)

  def validate(self) -> None:
    super().validate()
    # 0: the classes of the records' label_map.txt, resolved at job start
    # (cvrl.data.dataset_size.resolve_num_classes).
    base.check(self.head.num_classes >= 2 or self.head.num_classes == 0,
               'model.head.num_classes', self.head.num_classes,
               '>= 2, or 0 for the label map beside the training records')
    base.check(0.0 <= self.head.dropout_rate < 1.0,
               'model.head.dropout_rate', self.head.dropout_rate,
               'in [0, 1)')


@dataclasses.dataclass
class ClassificationTaskConfig(cfg.TaskConfig):
  """Video classification on a (pretrained, frozen or not) R3D backbone."""
  model: ClassificationModelConfig = dataclasses.field(
      default_factory=ClassificationModelConfig)
  train_data: video_data.VideoDataConfig = dataclasses.field(
      default_factory=lambda: video_data.VideoDataConfig(
          mode='train', is_training=True, num_frames=32))
  validation_data: video_data.VideoDataConfig = dataclasses.field(
      default_factory=lambda: video_data.VideoDataConfig(
          mode='test', is_training=False, num_frames=32, repeat=False,
          drop_remainder=False))
  # Train only the head; the backbone's weights and BN statistics stay as
  # restored (BN runs in inference mode).
  freeze_backbone: bool = True
  # Start from random weights instead of init_checkpoint: supervised
  # training from scratch, or the random-encoder baseline. Exactly one of
  # the two must be set, so a missing checkpoint never means "from scratch".
  random_backbone: bool = False
  l2_weight_decay: float = 0.0
  label_smoothing: float = 0.0
  init_seed: int = 0
  jit_compile: bool = False

  def validate(self) -> None:
    self.model.validate()
    base.check(
               bool(self.init_checkpoint) != self.random_backbone,
               'task.init_checkpoint', self.init_checkpoint,
               'a pretrained checkpoint (file or folder), or task.random_backbone='
               'true for a randomly initialised encoder, not both')
    base.check(self.l2_weight_decay >= 0, 'task.l2_weight_decay',
               self.l2_weight_decay, '>= 0')
    base.check(0.0 <= self.label_smoothing < 1.0,
               'task.label_smoothing', self.label_smoothing, 'in [0, 1)')
    base.check(self.train_data.mode == 'train', 'train_data.mode',
               self.train_data.mode, "'train'")
    base.check(self.validation_data.mode in ('train', 'test'),
               'validation_data.mode', self.validation_data.mode,
               "'test' (multi-view) or 'train'")
    self.train_data.validate()


def model_for(dataset: str, *, normalize_features: bool,
              dropout_rate: float = 0.0) -> ClassificationModelConfig:
  """R3D-50 and a linear head over the dataset's classes."""
  return ClassificationModelConfig(head=ClassifierHeadConfig(
      num_classes=base.dataset(dataset).num_classes,
      normalize_features=normalize_features, dropout_rate=dropout_rate))


def data_for(dataset: str, batch_size: int, split: Optional[int] = None,
             subset: str = '', train_examples: int = 0) -> dict:
  """Training clips (32 frames, crop + flip) and 10 x 3 test views.

  split: an official split (UCF-101 / HMDB-51); subset: a labelled subset's
  folder suffix ('1pct'), of `train_examples` videos.
  """
  facts = base.dataset(dataset)
  sizes = facts.split_sizes(split) if split else (facts.train_examples,
                                                  facts.val_examples)
  common = dict(num_frames=32, num_classes=facts.num_classes, dtype='auto')
  return dict(
      train_data=video_data.VideoDataConfig(
          mode='train', is_training=True,
          input_path=facts.train_pattern(split, subset),
          global_batch_size=batch_size,
          num_examples=train_examples or sizes[0], shuffle_buffer_size=1024,
          seed=0, **common),
      validation_data=video_data.VideoDataConfig(
          mode='test', is_training=False, repeat=False, drop_remainder=False,
          input_path=facts.eval_pattern(split), global_batch_size=32,
          num_examples=sizes[1], seed=1, **common))


def experiment(task: ClassificationTaskConfig, *, epochs: int,
               base_lr: float, warmup_epochs: int = 5) -> cfg.ExperimentConfig:
  """TPU, auto precision, SGD + cosine; steps from epochs at job start."""
  return cfg.ExperimentConfig(
      task=task,
      runtime=strategy.RuntimeConfig(mixed_precision_dtype='auto'),
      trainer=schedule.TrainerConfig(
          epochs=epochs, warmup_epochs=warmup_epochs, checkpoint_epochs=5,
          validation_epochs=10, steps_per_loop=500, summary_interval=500,
          validation_steps=-1,
          optimizer_config=pretrain.sgd_cosine(base_lr), max_to_keep=3,
          best_checkpoint_eval_metric='top_1_accuracy',
          best_checkpoint_metric_comp='higher',
          best_checkpoint_export_subdir='best'),
      restrictions=['task.train_data.is_training != None'])


def _pretrained(dataset: str) -> str:
  return f'{base.BUCKET_ROOT}/cvrl/pretrain_{dataset}'


def linear_eval(dataset: str, *, base_lr: float = 32.0, epochs: int = 100,
                batch_size: int = 1024, split: Optional[int] = None,
                pretrained_on: str = 'k400') -> cfg.ExperimentConfig:
  """Frozen backbone, l2-normalised feature, one linear layer, no decay."""
  task = ClassificationTaskConfig(
      model=model_for(dataset, normalize_features=True),
      freeze_backbone=True, init_checkpoint=_pretrained(pretrained_on),
      **data_for(dataset, batch_size, split))
  return experiment(task, epochs=epochs, base_lr=base_lr)


def fine_tune(dataset: str, *, base_lr: float, epochs: int, batch_size: int,
              warmup_epochs: int = 5, split: Optional[int] = None,
              subset: str = '', train_examples: int = 0
              ) -> cfg.ExperimentConfig:
  """All layers trained from the pretrained backbone, weight decay 1e-6."""
  task = ClassificationTaskConfig(
      model=model_for(dataset, normalize_features=False),
      freeze_backbone=False, init_checkpoint=_pretrained('k400'),
      l2_weight_decay=1e-6,
      **data_for(dataset, batch_size, split, subset, train_examples))
  return experiment(task, epochs=epochs, base_lr=base_lr,
                    warmup_epochs=warmup_epochs)


def supervised(dataset: str) -> cfg.ExperimentConfig:
  """Supervised upper bound: from scratch, no normalisation, dropout 0.5."""
  task = ClassificationTaskConfig(
      model=model_for(dataset, normalize_features=False, dropout_rate=0.5),
      freeze_backbone=False, random_backbone=True, l2_weight_decay=1e-6,
      **data_for(dataset, 1024))
  return experiment(task, epochs=200, base_lr=0.8)


@exp_factory.register_config_factory('cvrl_linear_eval_k400')
def cvrl_linear_eval_k400() -> cfg.ExperimentConfig:
  """Paper Table 2 (66.1% top-1 for R3D-50 pretrained 800 epochs on K400).

  python -m cvrl.tools.train --experiment=cvrl_linear_eval_k400 --mode=train_and_eval \\
      --config_file=experiments/linear_eval_k400.yaml --model_dir=DIR --tpu=TPU
  """
  return linear_eval('k400')


@exp_factory.register_config_factory('cvrl_linear_eval_k600')
def cvrl_linear_eval_k600() -> cfg.ExperimentConfig:
  """Paper Table 2, K600 rows (pretrained on K600).

  python -m cvrl.tools.train --experiment=cvrl_linear_eval_k600 --mode=train_and_eval \\
      --config_file=experiments/linear_eval_k600.yaml --model_dir=DIR --tpu=TPU
  """
  return linear_eval('k600', pretrained_on='k600')


# The released encoders' linear evaluation (Model Garden's video_ssl
# cvrl_linear_eval_k600.yaml): lr 32 at batch 1024, scaled linearly here.
RELEASED_BATCH, RELEASED_EPOCHS = 64, 100
RELEASED_CHECKPOINT = 'r3d_1x_k600_800ep'


@exp_factory.register_config_factory('cvrl_linear_eval_released')
def cvrl_linear_eval_released() -> cfg.ExperimentConfig:
  """The authors' released R3D-50 on your own videos (docs/released_encoders.md).

  python -m cvrl.tools.train --experiment=cvrl_linear_eval_released --mode=train_and_eval \
      --model_dir=runs/released_linear --params_override=task.init_checkpoint=r3d_1x_k600_800ep,\
task.train_data.input_path=records/train/train-*.tfrecord,task.validation_data.input_path=records/val/val-*.tfrecord

  The release's linear evaluation: R3D-50 (its block specs), 32 frames at
  stride 2, frames in [0, 1], 224 training crops, 10 clips x 3 crops at
  256 for testing, l2-normalised features, lr 32 per 1024 clips; the
  classes from the label map beside the records, the size counted.
  """
  task = ClassificationTaskConfig(
      model=model_for('k600', normalize_features=True),
      freeze_backbone=True, init_checkpoint=RELEASED_CHECKPOINT,
      **data_for('k600', RELEASED_BATCH))
  task.model.head.num_classes = 0
  # The README's layout of your own converted videos.
  for data, split in ((task.train_data, 'train'),
                      (task.validation_data, 'val')):
    data.override(dict(input_path=f'records/{split}/{split}-*.tfrecord',
                       num_examples=0, num_classes=0), is_strict=True)
  task.validation_data.global_batch_size = 8
  return experiment(task, epochs=RELEASED_EPOCHS,
                    base_lr=32.0 * RELEASED_BATCH / 1024)


@exp_factory.register_config_factory('cvrl_semi_supervised_k400_1pct')
def cvrl_semi_supervised_k400_1pct() -> cfg.ExperimentConfig:
  """Paper Table 3, 1% of K400 labels (tfrecords_tools.make_subset --fraction=0.01).

  python -m cvrl.tools.train --experiment=cvrl_semi_supervised_k400_1pct --mode=train_and_eval \\
      --config_file=experiments/semi_supervised_k400_1pct.yaml --model_dir=DIR --tpu=TPU
  """
  return fine_tune(
      'k400', base_lr=0.2, epochs=100, batch_size=1024, warmup_epochs=0,
      subset='1pct',
      train_examples=round(0.01 * base.dataset('k400').train_examples))


@exp_factory.register_config_factory('cvrl_semi_supervised_k400_10pct')
def cvrl_semi_supervised_k400_10pct() -> cfg.ExperimentConfig:
  """Paper Table 3, 10% of K400 labels (make_subset --fraction=0.1).

  python -m cvrl.tools.train --experiment=cvrl_semi_supervised_k400_10pct --mode=train_and_eval \\
      --config_file=experiments/semi_supervised_k400_10pct.yaml --model_dir=DIR --tpu=TPU
  """
  return fine_tune(
      'k400', base_lr=0.2, epochs=50, batch_size=1024, warmup_epochs=0,
      subset='10pct',
      train_examples=round(0.1 * base.dataset('k400').train_examples))


@exp_factory.register_config_factory('cvrl_ucf101_finetune')
def cvrl_ucf101_finetune() -> cfg.ExperimentConfig:
  """Paper Table 4; split 1 (experiments/ucf101_split{2,3}.yaml for others).

  python -m cvrl.tools.train --experiment=cvrl_ucf101_finetune --mode=train_and_eval \\
      --config_file=experiments/ucf101_split1.yaml --model_dir=DIR --tpu=TPU
  """
  return fine_tune('ucf101', base_lr=0.16, epochs=50, batch_size=128,
                   split=1)


@exp_factory.register_config_factory('cvrl_ucf101_linear_eval')
def cvrl_ucf101_linear_eval() -> cfg.ExperimentConfig:
  """Paper Table 4, UCF-101 linear evaluation; split 1 (ucf101_split{2,3}.yaml for others).

  python -m cvrl.tools.train --experiment=cvrl_ucf101_linear_eval --mode=train_and_eval \\
      --config_file=experiments/ucf101_split1.yaml --model_dir=DIR --tpu=TPU
  """
  return linear_eval('ucf101', base_lr=0.8, epochs=50, batch_size=128,
                     split=1)


@exp_factory.register_config_factory('cvrl_hmdb51_finetune')
def cvrl_hmdb51_finetune() -> cfg.ExperimentConfig:
  """Paper Table 4; split 1 (experiments/hmdb51_split{2,3}.yaml for others).

  python -m cvrl.tools.train --experiment=cvrl_hmdb51_finetune --mode=train_and_eval \\
      --config_file=experiments/hmdb51_split1.yaml --model_dir=DIR --tpu=TPU
  """
  return fine_tune('hmdb51', base_lr=0.16, epochs=50, batch_size=128,
                   split=1)


@exp_factory.register_config_factory('cvrl_hmdb51_linear_eval')
def cvrl_hmdb51_linear_eval() -> cfg.ExperimentConfig:
  """Paper Table 4, HMDB-51 linear evaluation; split 1 (hmdb51_split{2,3}.yaml for others).

  python -m cvrl.tools.train --experiment=cvrl_hmdb51_linear_eval --mode=train_and_eval \\
      --config_file=experiments/hmdb51_split1.yaml --model_dir=DIR --tpu=TPU
  """
  return linear_eval('hmdb51', base_lr=0.2, epochs=50, batch_size=128,
                     split=1)


@exp_factory.register_config_factory('cvrl_supervised_k400')
def cvrl_supervised_k400() -> cfg.ExperimentConfig:
  """Paper Table 2, supervised from scratch on K400 (76.0% top-1).

  python -m cvrl.tools.train --experiment=cvrl_supervised_k400 --mode=train_and_eval \\
      --config_file=experiments/supervised_k400.yaml --model_dir=DIR --tpu=TPU
  """
  return supervised('k400')


@exp_factory.register_config_factory('cvrl_supervised_k600')
def cvrl_supervised_k600() -> cfg.ExperimentConfig:
  """Paper Table 2, supervised from scratch on K600 (79.4% top-1).

  python -m cvrl.tools.train --experiment=cvrl_supervised_k600 --mode=train_and_eval \\
      --config_file=experiments/supervised_k600.yaml --model_dir=DIR --tpu=TPU
  """
  return supervised('k600')
