"""CVRL pretraining: task config and the registered experiments.

Each experiment is a small function returning a typed config; launch it with
`python -m cvrl.tools.train --experiment=NAME --mode=train_and_eval
--model_dir=DIR [--config_file=YAML] [--params_override=...] [--tpu=...]`.
Strict overrides: a misspelt key fails; `validate()` names an out-of-range
value's field.
"""

import dataclasses

from official.core import config_definitions as cfg
from official.core import exp_factory
from official.modeling import hyperparams
from official.modeling import optimization

from cvrl import losses
from cvrl.configs import base
from cvrl.configs import modeling
from cvrl.configs import schedule
from cvrl.configs import strategy
from cvrl.configs import video_data

@dataclasses.dataclass
class ContrastiveLossConfig(hyperparams.Config):
  """InfoNCE (paper Equation 1) and weight decay.

  reduction: how the 2N anchors' losses make the loss (`cvrl.losses`):
  'sum_of_directions' is the authors' release, the scale lr 0.32 and weight
  decay 1e-6 were tuned with (mean over the N first-view anchors plus mean
  over the N second-view anchors); 'mean' is the mean over all 2N anchors
  (Equation 1's scale, half the gradient of the contrastive term).
  """
  temperature: float = 0.1
  reduction: str = 'sum_of_directions'
  # weight_decay * sum(||kernel||^2 / 2), the authors' 1e-6.
  l2_weight_decay: float = 1e-6


@dataclasses.dataclass
class KNNMonitorConfig(hyperparams.Config):
  """Leave-one-out kNN top-1 on backbone features of the validation videos.

  Logged at every evaluation as `knn_top1_accuracy` (needs labelled
  validation records); k = 0 turns it off.
  """
  k: int = 20
  temperature: float = 0.07


@dataclasses.dataclass
class PretrainTaskConfig(cfg.TaskConfig):
  """The CVRL pretraining task (registered as `cvrl_pretrain`)."""
  model: modeling.CVRLModelConfig = dataclasses.field(
      default_factory=modeling.CVRLModelConfig)
  losses: ContrastiveLossConfig = dataclasses.field(
      default_factory=ContrastiveLossConfig)
  train_data: video_data.VideoDataConfig = dataclasses.field(
      default_factory=lambda: video_data.VideoDataConfig(
          mode='pretrain', is_training=True))
  validation_data: video_data.VideoDataConfig = dataclasses.field(
      default_factory=lambda: video_data.VideoDataConfig(
          mode='pretrain', is_training=False, repeat=False))
  # Seed of the weight initialisation: the same seed gives the same initial
  # model, so reruns (and restarts) are comparable step for step.
  init_seed: int = 0
  # Compile the forward and backward pass with XLA (TPU always compiles;
  # on one CPU/GPU device this is the TPU-readiness check).
  jit_compile: bool = False
  # Clips whose augmented views are written as image summaries at the
  # trainer's summary_interval (0 turns them off).
  image_summary_clips: int = 2
  knn_monitor: KNNMonitorConfig = dataclasses.field(
      default_factory=KNNMonitorConfig)

  def validate(self) -> None:
    self.model.validate()
    base.check(self.losses.temperature > 0, 'losses.temperature',
               self.losses.temperature, '> 0')
    base.check(self.losses.reduction in losses.REDUCTIONS,
               'losses.reduction', self.losses.reduction,
               f'one of {losses.REDUCTIONS}')
    base.check(self.losses.l2_weight_decay >= 0,
               'losses.l2_weight_decay', self.losses.l2_weight_decay,
               '>= 0')
    base.check(self.knn_monitor.k >= 0, 'knn_monitor.k',
               self.knn_monitor.k, '>= 0')
    base.check(self.knn_monitor.temperature > 0,
               'knn_monitor.temperature', self.knn_monitor.temperature,
               '> 0')
    base.check(self.train_data.mode == 'pretrain', 'train_data.mode',
               self.train_data.mode, "'pretrain'")
    self.train_data.validate()


def sgd_cosine(base_lr: float, momentum: float = 0.9
               ) -> optimization.OptimizationConfig:
  """SGD with momentum, half-cosine decay to 0 after a linear warmup.

  Paper 4.1. The step counts (warmup, decay) are filled in from
  trainer.epochs / warmup_epochs when the job starts (`schedule.derive`).
  """
  return optimization.OptimizationConfig({
      'optimizer': {'type': 'sgd', 'sgd': {'momentum': momentum}},
      'learning_rate': {'type': 'cosine',
                        'cosine': {'initial_learning_rate': base_lr}},
  })


def kinetics_pretrain(dataset: str, epochs: int) -> cfg.ExperimentConfig:
  """The paper's recipe: R3D-50, 16x224x224 at stride 2, batch 1024, 0.32.

  Convert Kinetics at the paper's 25 fps (the gap t is counted in frames):
    python -m tfrecords_tools.convert_videos --fps=25 ...
  Smoke test on 2 CPU cores first (< 2 minutes, your own records):
    python -m cvrl.tools.train --experiment=cvrl_pretrain_k400 --mode=train_and_eval \
        --model_dir=/tmp/smoke --config_file=experiments/runlocal.yaml \
        --params_override=task.train_data.input_path=...,task.validation_data.input_path=...
  """
  facts = base.dataset(dataset)
  task = PretrainTaskConfig(
      train_data=video_data.VideoDataConfig(
          mode='pretrain', is_training=True,
          input_path=facts.train_pattern(), global_batch_size=1024,
          num_examples=facts.train_examples, dtype='auto',
          shuffle_buffer_size=1024, seed=0, augment_on='auto'),
      validation_data=video_data.VideoDataConfig(
          mode='pretrain', is_training=False, repeat=False,
          input_path=facts.eval_pattern(), global_batch_size=1024,
          num_examples=facts.val_examples, dtype='auto', seed=1,
          augment_on='auto'))
  return cfg.ExperimentConfig(
      task=task,
      runtime=strategy.RuntimeConfig(mixed_precision_dtype='auto'),
      trainer=schedule.TrainerConfig(
          # Validation (contrastive loss and kNN on the val split, a few
          # steps at batch 1024) every 10 epochs: 80 points on an 800-epoch
          # curve, the first long before the end.
          epochs=epochs, warmup_epochs=5, steps_per_loop=500,
          summary_interval=500, checkpoint_interval=2000,
          validation_epochs=10, validation_steps=-1,
          optimizer_config=sgd_cosine(0.32), max_to_keep=3),
      restrictions=['task.train_data.is_training != None'])


@exp_factory.register_config_factory('cvrl_pretrain_k400')
def cvrl_pretrain_k400() -> cfg.ExperimentConfig:
  """800 epochs on K400 (paper Table 2: 66.1% linear eval).

  python -m cvrl.tools.train --experiment=cvrl_pretrain_k400 --mode=train_and_eval \\
      --config_file=experiments/pretrain_k400_r3d50_800ep.yaml --model_dir=DIR --tpu=TPU
  """
  return kinetics_pretrain('k400', 800)


@exp_factory.register_config_factory('cvrl_pretrain_k600')
def cvrl_pretrain_k600() -> cfg.ExperimentConfig:
  """800 epochs on K600 (paper Table 2: 70.4% linear eval on K600).

  python -m cvrl.tools.train --experiment=cvrl_pretrain_k600 --mode=train_and_eval \\
      --config_file=experiments/pretrain_k600_r3d50_800ep.yaml --model_dir=DIR --tpu=TPU
  """
  return kinetics_pretrain('k600', 800)


@exp_factory.register_config_factory('cvrl_pretrain_k400_200ep')
def cvrl_pretrain_k400_200ep() -> cfg.ExperimentConfig:
  """200 epochs on K400, the paper's ablation length (Figure 3, Table 9).

  python -m cvrl.tools.train --experiment=cvrl_pretrain_k400_200ep --mode=train_and_eval \\
      --config_file=experiments/pretrain_k400_r3d50_200ep.yaml --model_dir=DIR --tpu=TPU
  """
  return kinetics_pretrain('k400', 200)


@exp_factory.register_config_factory('cvrl_pretrain_k600_200ep')
def cvrl_pretrain_k600_200ep() -> cfg.ExperimentConfig:
  """200 epochs on K600, the ablation length (Figure 3, Table 9) on K600.

  python -m cvrl.tools.train --experiment=cvrl_pretrain_k600_200ep --mode=train_and_eval \\
      --config_file=experiments/pretrain_k600_r3d50_200ep.yaml --model_dir=DIR --tpu=TPU
  """
  return kinetics_pretrain('k600', 200)
