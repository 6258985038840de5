"""Typed configs of the video input pipelines (Model Garden hyperparams).

They extend `official.core.config_definitions.DataConfig`, so experiment
configs, YAML files and `--params_override` set them with Model Garden's
strict overrides (a misspelt key fails). `validate()` checks value ranges and
names the offending field; the pipeline builders call it.

The defaults are the paper's recipe (CVPR 2021, section 3.3, Algorithm 1 and
section 4.1): 16 frames at stride 2, gap P(t) proportional to -t + c, crop
area [0.3, 1] and aspect [0.5, 2] resized to 224, flip 0.5, colour jitter 0.8
with strengths (0.8, 0.8, 0.8, 0.2), greyscale 0.2, Gaussian blur on every
clip, all drawn once per clip.
"""

import dataclasses
from typing import Tuple

from official.core import config_definitions as cfg
from official.modeling import hyperparams

from cvrl.configs.base import check

GAP_SHAPES = ('decreasing', 'uniform', 'increasing')
SHORT_VIDEO_POLICIES = ('loop', 'pad')
MODES = ('pretrain', 'train', 'test')
OUTPUT_LAYOUTS = ('stacked', 'dict')
# 'auto' follows the job's precision (cvrl.configs.precision); a pipeline
# built outside a job reads it as float32.
DTYPES = ('auto', 'float32', 'bfloat16', 'float16')
AUGMENT_ON = ('host', 'device', 'auto')
BACKGROUND_METHODS = ('none', 'fame', 'be')
BE_SOURCES = ('same_video', 'other_video')
DEBIAS_VIEWS = ('second', 'both')


def _check_range(field: str, pair, low: float, high: float) -> None:
  check(len(pair) == 2 and low <= pair[0] <= pair[1] <= high, field, pair,
         f'(min, max) with {low} <= min <= max <= {high}')


@dataclasses.dataclass
class TemporalSamplingConfig(hyperparams.Config):
  """How the two clips of a video are placed (paper Figure 3).

  The gap t between the clip starts is drawn from P(t) over the valid range
  [0, G], G = T - clip span: 'decreasing' is P(t) proportional to
  (G + 1)^p - t^p (the paper's -t^p + c), 'increasing' to (t + 1)^p,
  'uniform' to 1. The first start is uniform in [0, G - t], the second is
  exactly t frames later; which of the two is view 1 is drawn (p = 1/2). A
  video shorter than one clip gets two independent uniform starts (looped).
  `enabled=False` is the Table 9 ablation: both clips start at the same
  frame.
  """
  enabled: bool = True
  gap_shape: str = 'decreasing'
  gap_power: float = 1.0
  # Which clip of the pair is view 1: random (the authors' release), or
  # always the earlier one (false).
  random_view_order: bool = True
  # Videos shorter than a clip: 'loop' repeats from the start, 'pad' repeats
  # the last frame.
  short_video: str = 'loop'

  def validate(self, prefix: str = 'temporal') -> None:
    check(self.gap_shape in GAP_SHAPES, f'{prefix}.gap_shape',
           self.gap_shape, f'one of {GAP_SHAPES}')
    check(self.gap_power > 0, f'{prefix}.gap_power', self.gap_power, '> 0')
    check(self.short_video in SHORT_VIDEO_POLICIES, f'{prefix}.short_video',
           self.short_video, f'one of {SHORT_VIDEO_POLICIES}')


@dataclasses.dataclass
class ViewAugmentationConfig(hyperparams.Config):
  """Spatial augmentation of one view; each draw is made once per clip."""
  crop_area_range: Tuple[float, float] = (0.3, 1.0)
  crop_aspect_range: Tuple[float, float] = (0.5, 2.0)
  flip_prob: float = 0.5
  color_jitter_prob: float = 0.8
  brightness: float = 0.8
  contrast: float = 0.8
  saturation: float = 0.8
  hue: float = 0.2
  grayscale_prob: float = 0.2
  blur_prob: float = 1.0
  blur_sigma_range: Tuple[float, float] = (0.1, 2.0)
  solarize_prob: float = 0.0

  def validate(self, prefix: str) -> None:
    _check_range(f'{prefix}.crop_area_range', self.crop_area_range, 1e-3, 1.0)
    _check_range(f'{prefix}.crop_aspect_range', self.crop_aspect_range, 1e-2,
                 1e2)
    _check_range(f'{prefix}.blur_sigma_range', self.blur_sigma_range, 1e-3,
                 100.0)
    for name in ('flip_prob', 'color_jitter_prob', 'grayscale_prob',
                 'blur_prob', 'solarize_prob'):
      value = getattr(self, name)
      check(0.0 <= value <= 1.0, f'{prefix}.{name}', value, 'in [0, 1]')
    for name in ('brightness', 'contrast', 'saturation'):
      value = getattr(self, name)
      check(0.0 <= value <= 1.0, f'{prefix}.{name}', value, 'in [0, 1]')
    check(0.0 <= self.hue <= 0.5, f'{prefix}.hue', self.hue, 'in [0, 0.5]')


def crop_and_flip_only(area_range=(0.3, 1.0)) -> ViewAugmentationConfig:
  """The 'standard' augmentation of the paper's supervised protocols."""
  return ViewAugmentationConfig(crop_area_range=area_range,
                                color_jitter_prob=0.0, grayscale_prob=0.0,
                                blur_prob=0.0, solarize_prob=0.0)


@dataclasses.dataclass
class SpatialAugmentationConfig(hyperparams.Config):
  """Spatial augmentation of the two views (paper Algorithm 1).

  `enabled=False` (Table 9 ablation) replaces it by a centre crop of the
  largest square resized to `crop_size`. `temporally_consistent=False` (Table
  9 ablation) draws every parameter independently for every frame. The
  released code's asymmetric views are view_2.blur_prob=0.1 and
  view_2.solarize_prob=0.2 (experiments/ablations/released_code_views.yaml).
  """
  enabled: bool = True
  temporally_consistent: bool = True
  view_1: ViewAugmentationConfig = dataclasses.field(
      default_factory=ViewAugmentationConfig)
  view_2: ViewAugmentationConfig = dataclasses.field(
      default_factory=ViewAugmentationConfig)

  def validate(self, prefix: str = 'spatial') -> None:
    self.view_1.validate(f'{prefix}.view_1')
    self.view_2.validate(f'{prefix}.view_2')


@dataclasses.dataclass
class BackgroundConfig(hyperparams.Config):
  """Against the static-background shortcut (`cvrl.data.background_debias`).

  Off ('none') in the paper's recipes. method 'fame' (Ding et al., CVPR
  2022): the second view's moving region (in each frame, its
  `foreground_ratio` of pixels farthest from the clip's temporal median) is
  pasted onto another video's still background; 'be' (Wang et al., CVPR
  2021): a frame of the clip (`be_source: same_video`, the paper's) or of
  another video of the batch (`other_video`) is blended into every frame of
  the second view with a weight drawn from `be_weight_range`. Either is applied to a video with
  probability `prob`. Pretraining only.
  """
  method: str = 'none'
  prob: float = 1.0
  foreground_ratio: float = 0.2
  be_source: str = 'same_video'
  be_weight_range: Tuple[float, float] = (0.1, 0.5)
  # 'second': the second view only (the papers' positive pair: one view
  # as it was); 'both': each view with its own draw, so that no view keeps
  # the video's background.
  views: str = 'second'
  # FAME: the partner's background flipped both ways with its colour
  # channels rotated, so that it does not match the partner's own views.
  scramble_background: bool = False

  def validate(self, prefix: str = 'background') -> None:
    check(self.method in BACKGROUND_METHODS, f'{prefix}.method',
          self.method, f'one of {BACKGROUND_METHODS}')
    check(0.0 <= self.prob <= 1.0, f'{prefix}.prob', self.prob, 'in [0, 1]')
    check(0.0 < self.foreground_ratio <= 1.0, f'{prefix}.foreground_ratio',
          self.foreground_ratio, 'in (0, 1]')
    check(self.be_source in BE_SOURCES, f'{prefix}.be_source',
          self.be_source, f'one of {BE_SOURCES}')
    _check_range(f'{prefix}.be_weight_range', self.be_weight_range, 0.0,
                 1.0)
    check(self.views in DEBIAS_VIEWS, f'{prefix}.views', self.views,
          f'one of {DEBIAS_VIEWS}')


@dataclasses.dataclass
class VideoDataConfig(cfg.DataConfig):
  """An input pipeline: where the videos are and how clips are made.

  mode: 'pretrain' (two augmented views per video), 'train' (one clip, crop
  and flip, for linear evaluation and fine-tuning) or 'test' (num_test_clips
  evenly spaced clips x num_test_crops crops per video, kept together).
  """
  mode: str = 'pretrain'
  num_frames: int = 16
  frame_stride: int = 2
  crop_size: int = 224
  # Test mode: short side resized to this, then num_test_crops square crops
  # of this size along the long side (SlowFast's 3-crop).
  test_short_side: int = 256
  num_test_clips: int = 10
  num_test_crops: int = 3
  num_classes: int = -1
  dtype: str = 'float32'
  zero_centering: bool = False  # [-1, 1] instead of [0, 1]
  output_layout: str = 'stacked'  # [2B, T, H, W, 3], first views first
  # Decode only each clip's crop window when the window is smaller than this
  # fraction of the frame (decode_and_crop_jpeg); else decode whole frames.
  cropped_decode_max_area: float = 0.9
  # Fuse the per-pixel augmentation with XLA (identical results up to float
  # rounding, about 3x faster on CPU hosts).
  xla_augment: bool = True
  # Where Algorithm 1's work after decoding runs (pretrain mode): 'host' in
  # the tf.data map, or 'device' in the train step on the accelerator: the
  # host then only decodes each clip's crop window and sends a batch's
  # windows, uint8, packed in one buffer with the clips' drawn parameters
  # (cvrl/data/window_buffer.py); the step resizes them and does the
  # per-pixel work. The same seed gives the
  # same clips in both (up to float rounding). 'auto': device when the job
  # runs on TPUs or GPUs, host on CPUs (resolved at job start, written to
  # params.yaml).
  augment_on: str = 'host'
  # augment_on: device: (height, width) of the canvas: a window at most
  # `width` wide with at most height x width pixels is sent as is, portrait
  # or landscape. A window that fits only transposed is sent so (exact); one
  # that fits neither way is shrunk on the host to fit and counted (metric
  # windows_shrunk). The default holds any window of records converted at
  # short side 256 with aspect up to 16:9, landscape or portrait.
  device_canvas: Tuple[int, int] = (256, 456)
  # augment_on: device: the batch's buffer holds this fraction of the bytes
  # of all its views at canvas size (static length). A batch whose views
  # need more has its windows shrunk on the host to fit (a departure from
  # Algorithm 1), counted in windows_shrunk. 0: by the per-replica batch
  # (`window_buffer.auto_budget`: 1.0 at 1, 0.85 at 4, 0.75 at 8, 0.7 from
  # 16; at most 1 batch in 10^5 shrunk, docs/benchmarks.md). 1.0 never
  # shrinks.
  device_budget: float = 0.0
  num_parallel_calls: int = -1  # tf.data.AUTOTUNE
  # Training steps already taken: each input pipeline skips the examples it
  # fed them (start_step x its share of the global batch) and yields exactly
  # the batches an uninterrupted job sees next, because all randomness is
  # keyed by stream position. `train.py` sets it from the checkpoint.
  start_step: int = 0
  # Size of the split, for epoch-based step counts (<= 0: counted from the
  # records at job start). A set value is checked against the count
  # (`cvrl.data.dataset_size`); check_num_examples=false keeps it anyway.
  num_examples: int = -1
  check_num_examples: bool = True
  repeat: bool = True
  # TFDS sources: feature names of the encoded frames and the label.
  tfds_frames_key: str = 'video'
  tfds_label_key: str = 'label'
  temporal: TemporalSamplingConfig = dataclasses.field(
      default_factory=TemporalSamplingConfig)
  spatial: SpatialAugmentationConfig = dataclasses.field(
      default_factory=SpatialAugmentationConfig)
  train_view: ViewAugmentationConfig = dataclasses.field(
      default_factory=crop_and_flip_only)
  background: BackgroundConfig = dataclasses.field(
      default_factory=BackgroundConfig)

  def validate(self) -> None:
    """Raises ConfigError naming the first field out of its range."""
    check(self.mode in MODES, 'mode', self.mode, f'one of {MODES}')
    check(self.num_frames >= 1, 'num_frames', self.num_frames, '>= 1')
    check(self.frame_stride >= 1, 'frame_stride', self.frame_stride, '>= 1')
    check(self.crop_size >= 8, 'crop_size', self.crop_size, '>= 8')
    check(self.test_short_side >= self.crop_size, 'test_short_side',
           self.test_short_side, f'>= crop_size ({self.crop_size})')
    check(self.num_test_clips >= 1, 'num_test_clips', self.num_test_clips,
           '>= 1')
    check(self.num_test_crops in (1, 3), 'num_test_crops',
           self.num_test_crops, '1 (centre) or 3 (along the long side)')
    check(self.dtype in DTYPES, 'dtype', self.dtype, f'one of {DTYPES}')
    check(self.output_layout in OUTPUT_LAYOUTS, 'output_layout',
           self.output_layout, f'one of {OUTPUT_LAYOUTS}')
    check(0.0 <= self.cropped_decode_max_area <= 1.0,
           'cropped_decode_max_area', self.cropped_decode_max_area,
           'in [0, 1]')
    check(self.global_batch_size >= 1, 'global_batch_size',
           self.global_batch_size, '>= 1')
    check(self.start_step >= 0, 'start_step', self.start_step, '>= 0')
    check(self.augment_on in AUGMENT_ON, 'augment_on', self.augment_on,
          f'one of {AUGMENT_ON}')
    check(min(self.device_canvas) >= 1, 'device_canvas', self.device_canvas,
          '(height, width), both >= 1')
    check(0.0 <= self.device_budget <= 1.0, 'device_budget',
          self.device_budget, 'in (0, 1], or 0 for the per-replica batch\'s '
          'default')
    check(self.augment_on == 'host' or (
        self.mode == 'pretrain' and self.output_layout == 'stacked'),
          'augment_on', self.augment_on,
          "'host' unless mode is 'pretrain' with output_layout 'stacked'")
    check(bool(self.input_path) != bool(self.tfds_name), 'input_path',
           self.input_path, 'a file pattern, or tfds_name instead (not both)')
    self.temporal.validate()
    self.spatial.validate()
    self.train_view.validate('train_view')
    self.background.validate()
    check(self.background.method == 'none' or (
        self.mode == 'pretrain' and self.output_layout == 'stacked'),
          'background.method', self.background.method,
          "'none' unless mode is 'pretrain' with output_layout 'stacked'")
