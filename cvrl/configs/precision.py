"""Which floating-point precision a job computes in, chosen for its device.

`runtime.mixed_precision_dtype: auto` (the paper experiments' default) is
resolved when the job starts (`cvrl.configs.launch.prepare`):

  TPU                              bfloat16 (native bfloat16 units)
  GPU, compute capability >= 8.0   bfloat16 (A100, H100, H200, L4, RTX 30xx+)
  older GPU (V100, T4, P100)       float16, with dynamic loss scaling (Model
                                   Garden wraps the optimizer when the
                                   runtime's dtype is float16)
  CPU                              float32: bfloat16 is emulated on CPUs,
                                   10x slower per step (measured: an R3D-50
                                   step at batch 2 took 223 s vs 21 s)

and every input pipeline whose `dtype` is 'auto' follows it, so the host
sends tensors of the dtype the model computes in. An explicit dtype wins;
bfloat16 forced onto a CPU-only job gets a warning.
"""

import dataclasses
from typing import List, Optional, Sequence, Tuple

from absl import logging
import tensorflow as tf

AUTO = 'auto'
# Compute capability from which GPUs have bfloat16 tensor cores (Ampere).
BFLOAT16_MIN_CAPABILITY = (8, 0)


@dataclasses.dataclass(frozen=True)
class Devices:
  """What the job will run on: a TPU, GPUs (their compute capabilities), or
  neither (CPU)."""
  tpu: bool = False
  gpu_capabilities: Tuple[Tuple[int, int], ...] = ()
  # TPU devices this host shows although no TPU was named (--tpu): the job
  # does not use them (the strategy warns).
  unused_tpus: int = 0

  @property
  def kind(self) -> str:
    if self.tpu:
      return 'tpu'
    return 'gpu' if self.gpu_capabilities else 'cpu'


def local_devices(tpu_address: Optional[str]) -> Devices:
  """The devices of this job: a TPU if one is named, else the local GPUs."""
  if tpu_address:
    return Devices(tpu=True)
  unused_tpus = len(tf.config.list_physical_devices('TPU'))
  capabilities = []
  for gpu in tf.config.list_physical_devices('GPU'):
    details = tf.config.experimental.get_device_details(gpu)
    capabilities.append(tuple(details.get('compute_capability', (0, 0))))
  return Devices(gpu_capabilities=tuple(capabilities),
                 unused_tpus=unused_tpus)


def resolve(requested: Optional[str], devices: Devices) -> Tuple[str, str]:
  """(dtype, why): the compute dtype for `requested` on `devices`.

  requested: 'auto', or an explicit 'float32' / 'bfloat16' / 'float16'
  (None or '' means float32, Model Garden's default).
  """
  if requested and requested != AUTO:
    why = 'set explicitly'
    if requested == 'bfloat16' and devices.kind == 'cpu':
      why += ('; WARNING: bfloat16 is emulated on CPU (about 10x slower per '
              'step than float32): use auto or float32 here')
    if requested == 'float16' and devices.kind == 'cpu':
      why += ('; WARNING: float16 on CPU runs only XLA-compiled '
              '(task.jit_compile=true: TF has no float16 MaxPool3D CPU '
              'kernel) and is emulated: use auto or float32 here')
    return requested, why
  if not requested:
    return 'float32', 'not set (float32)'
  if devices.kind == 'tpu':
    return 'bfloat16', 'auto: TPU'
  if devices.kind == 'gpu':
    oldest = min(devices.gpu_capabilities)
    if oldest >= BFLOAT16_MIN_CAPABILITY:
      return 'bfloat16', f'auto: GPU compute capability {_cc(oldest)} >= 8.0'
    return 'float16', (f'auto: GPU compute capability {_cc(oldest)} < 8.0 '
                       'has no bfloat16 units; float16 with dynamic loss '
                       'scaling')
  return 'float32', 'auto: CPU (bfloat16 would be emulated)'


def _cc(capability: Sequence[int]) -> str:
  return '.'.join(str(c) for c in capability)


def data_configs(task) -> List:
  """The input configs of a task config (those with a dtype field)."""
  return [getattr(task, name) for name in ('train_data', 'validation_data')
          if getattr(task, name, None) is not None
          and hasattr(getattr(task, name), 'dtype')]


def apply(params, devices: Devices) -> str:
  """Resolves the runtime's and the inputs' dtypes in place; returns a line
  for the job's log."""
  requested = params.runtime.mixed_precision_dtype
  dtype, why = resolve(requested, devices)
  params.runtime.mixed_precision_dtype = dtype
  followed = []
  for data in data_configs(params.task):
    if data.dtype == AUTO:
      data.dtype = dtype
      followed.append('follows')
    else:
      followed.append(f'{data.dtype} (explicit)')
  line = (f'precision: {dtype} on {devices.kind} ({why}); input dtype '
          + ', '.join(followed))
  if 'WARNING' in why:
    logging.warning(line)
  return line
