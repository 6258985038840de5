"""Typed configs of the CVRL encoder and projection head."""

import dataclasses
from typing import Optional, Tuple

from official.modeling import hyperparams
from official.vision.configs import common

from cvrl.configs import base
from cvrl.configs import video_data

# Bottleneck blocks per stage (res2..res5) for each depth; depth 14 is the
# small variant for CPU runs and tests.
BLOCK_COUNTS = {
    14: (1, 1, 1, 1),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
    200: (3, 24, 36, 3),
}

INPUT_FRAMES = ('rgb', 'difference', 'rgb_and_difference')


@dataclasses.dataclass
class R3DConfig(hyperparams.Config):
  """3D-ResNet following the Slow pathway (paper Table 1).

  conv1 5x7x7 stride (2, 2, 2); 1x3x3 max pool; res2..res5 bottlenecks whose
  first convolution has temporal kernel `stage_temporal_kernels`; global
  average pooling to a 2048 x width feature (at depth >= 50).
  """
  depth: int = 50
  width_multiplier: float = 1.0
  stem_temporal_kernel: int = 5
  stem_temporal_stride: int = 2
  stage_temporal_kernels: Tuple[int, int, int, int] = (1, 1, 3, 3)
  # Zero-initialise the last BN of each block (Goyal et al.), as SlowFast.
  zero_init_residual: bool = True
  # 2: res5 at spatial stride 1 with dilation 2 (detection, output stride
  # 16 instead of 32); same weights, so checkpoints restore either way.
  res5_dilation: int = 1
  # 'difference': the network sees x[t+1] - x[t] (T - 1 frames) instead of
  # the frames, so a still background is zero at its input: residual frames
  # (Tao et al., "Rethinking Motion Representation: Residual Frames with 3D
  # ConvNets", 2020; a view of IIC, Tao et al., ACM MM 2020). Off ('rgb') in
  # every paper recipe; it is part of the encoder, so pretraining, feature
  # export and evaluation all see the same input. 'rgb_and_difference': the
  # frame x[t+1] and the residual side by side (6 channels, T - 1 frames),
  # motion and appearance both (studies/learning_under_nuisance).
  input_frames: str = 'rgb'

  @property
  def output_stride(self) -> int:
    """Spatial stride of res5 with respect to the input frames."""
    return 32 if self.res5_dilation == 1 else 16

  def validate(self, prefix: str = 'model.backbone.cvrl_r3d') -> None:
    base.check(self.depth in BLOCK_COUNTS, f'{prefix}.depth', self.depth,
               f'one of {sorted(BLOCK_COUNTS)}')
    base.check(self.width_multiplier > 0, f'{prefix}.width_multiplier',
               self.width_multiplier, '> 0')
    base.check(self.res5_dilation in (1, 2), f'{prefix}.res5_dilation',
               self.res5_dilation, '1 (classification) or 2 (detection)')
    base.check(self.input_frames in INPUT_FRAMES,
               f'{prefix}.input_frames', self.input_frames,
               f'one of {INPUT_FRAMES}')
    base.check(len(self.stage_temporal_kernels) == 4,
               f'{prefix}.stage_temporal_kernels',
               self.stage_temporal_kernels, '4 values (res2..res5)')


@dataclasses.dataclass
class Backbone3D(hyperparams.OneOfConfig):
  """Backbone choice, by name, for Model Garden's backbone factory."""
  type: Optional[str] = 'cvrl_r3d'
  cvrl_r3d: R3DConfig = dataclasses.field(default_factory=R3DConfig)


@dataclasses.dataclass
class ProjectionHeadConfig(hyperparams.Config):
  """SimCLR-style MLP: hidden layers of Dense + BN + ReLU, then Dense.

  hidden_dim 0 means the backbone's feature size (2048 x width).
  """
  num_hidden_layers: int = 3
  hidden_dim: int = 0
  output_dim: int = 128

  def validate(self, prefix: str = 'model.projection_head') -> None:
    base.check(0 <= self.num_hidden_layers <= 3,
               f'{prefix}.num_hidden_layers', self.num_hidden_layers,
               'in [0, 3]')
    base.check(self.output_dim >= 1, f'{prefix}.output_dim',
               self.output_dim, '>= 1')


@dataclasses.dataclass
class EncoderConfig(hyperparams.Config):
  """The backbone and its normalisation: what every model config holds and
  `cvrl_model.build_backbone` builds (pretraining, classification)."""
  backbone: Backbone3D = dataclasses.field(default_factory=Backbone3D)
  norm_activation: common.NormActivation = dataclasses.field(
      default_factory=lambda: common.NormActivation(
          activation='relu', use_sync_bn=True, norm_momentum=0.9,
          norm_epsilon=1e-5))

  def validate(self) -> None:
    base.check(self.backbone.type == 'cvrl_r3d', 'model.backbone.type',
               self.backbone.type, "'cvrl_r3d'")
    self.backbone.cvrl_r3d.validate()


@dataclasses.dataclass
class CVRLModelConfig(EncoderConfig):
  projection_head: ProjectionHeadConfig = dataclasses.field(
      default_factory=ProjectionHeadConfig)

  def validate(self) -> None:
    super().validate()
    self.projection_head.validate()
