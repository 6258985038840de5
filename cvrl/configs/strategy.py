"""Which tf.distribute strategy a job runs under, chosen for its machine.

`runtime.distribution_strategy: auto` (every paper recipe's default) is
resolved when the job starts (`cvrl.configs.launch.prepare`):

  --tpu=NAME given                  'tpu' (TPUStrategy on that TPU; --tpu=local
                                    on a Cloud TPU VM)
  TF_CONFIG names other workers     'multi_worker_mirrored' over each worker's
                                    GPUs (or CPU)
  GPUs visible                      'mirrored' over all of them
  neither                           'one_device' on the CPU

TPU devices visible on a host run without --tpu (a Cloud TPU VM) are not
used: the job says so in a warning naming --tpu=local. An explicit strategy
is kept, with two mistakes caught: 'tpu' without --tpu
runs as 'auto' would (with a warning), and a strategy left on the CPU
(num_gpus 0) on a machine with GPUs gets a warning naming
`runtime.num_gpus`. The resolved name, GPU count and the devices the
strategy computes on are written into the config (params.yaml) and the
precision is then chosen for those devices, not for the machine: a CPU-only
strategy on a GPU machine computes in float32.
"""

import dataclasses
import json
from typing import Optional, Tuple

from absl import logging
import tensorflow as tf

from official.common import distribute_utils
from official.core import config_definitions as cfg

from cvrl.configs import base
from cvrl.configs import precision

AUTO = 'auto'
# Model Garden's names (official.common.distribute_utils), plus 'auto'.
STRATEGIES = (AUTO, 'tpu', 'mirrored', 'multi_worker_mirrored', 'one_device',
              'parameter_server', 'off')


@dataclasses.dataclass
class RuntimeConfig(cfg.RuntimeConfig):
  """Model Garden's runtime config; `devices` records what the resolved
  strategy computes on (filled in at job start, for params.yaml)."""
  distribution_strategy: str = AUTO
  devices: str = ''


def tf_config_workers(tf_config: Optional[str]) -> int:
  """Workers (chief included) that a TF_CONFIG value names; 0 if unset."""
  if not tf_config:
    return 0
  try:
    cluster = json.loads(tf_config).get('cluster', {})
  except (ValueError, AttributeError) as e:
    raise base.ConfigError(f'TF_CONFIG={tf_config!r}: expected JSON with a '
                           f'"cluster" entry ({e})') from e
  return sum(len(cluster.get(k, [])) for k in ('chief', 'worker'))


@dataclasses.dataclass(frozen=True)
class Choice:
  """A resolved strategy: its name, GPU count, devices and why."""
  name: str
  num_gpus: int
  devices: Tuple[str, ...]
  why: str

  def compute_devices(self, machine: precision.Devices) -> precision.Devices:
    """What the strategy computes on, for the precision choice."""
    if self.name == 'tpu':
      return precision.Devices(tpu=True)
    return precision.Devices(
        gpu_capabilities=machine.gpu_capabilities[:self.num_gpus])


def _cpu_or_gpus(num_gpus: int, workers: int = 1) -> Tuple[str, ...]:
  local = (tuple(f'/gpu:{i}' for i in range(num_gpus)) if num_gpus
           else ('/cpu:0',))
  if workers > 1:
    return tuple(f'{d} on each of {workers} workers' for d in local)
  return local


def resolve(runtime, machine: precision.Devices,
            tf_config: Optional[str] = None) -> Choice:
  """The strategy for `runtime` on `machine` (see the module doc).

  runtime: the config's runtime section (distribution_strategy, num_gpus,
  tpu). tf_config: the TF_CONFIG environment value, if any.
  """
  requested = runtime.distribution_strategy or AUTO
  base.check(requested in STRATEGIES, 'runtime.distribution_strategy',
             requested, f'one of {STRATEGIES}')
  gpus = len(machine.gpu_capabilities)
  if runtime.tpu or machine.tpu:
    return Choice('tpu', 0, (f'TPU {runtime.tpu or "(this host)"}',),
                  '--tpu given')
  why = 'auto'
  if requested == 'tpu':
    logging.warning(
        "runtime.distribution_strategy='tpu' without --tpu: running on this "
        "machine's %s instead (give --tpu=NAME, or --tpu=local on a Cloud TPU "
        'VM, to use a TPU)', f'{gpus} GPU(s)' if gpus else 'CPU')
    requested, why = AUTO, "'tpu' without --tpu, resolved as auto"
  unused = ''
  if machine.unused_tpus:
    unused = (f'; WARNING: {machine.unused_tpus} TPU device(s) visible but '
              'not used: give --tpu=local (on a Cloud TPU VM) or --tpu=NAME '
              'to train on them')
  why += unused
  if requested == AUTO:
    workers = tf_config_workers(tf_config)
    if workers > 1:
      return Choice('multi_worker_mirrored', gpus,
                    _cpu_or_gpus(gpus, workers),
                    f'{why}: TF_CONFIG names {workers} workers')
    if gpus:
      return Choice('mirrored', gpus, _cpu_or_gpus(gpus),
                    f'{why}: {gpus} GPU(s) visible')
    return Choice('one_device', 0, _cpu_or_gpus(0), f'{why}: no GPU or TPU')
  num_gpus = runtime.num_gpus
  base.check(0 <= num_gpus <= gpus, 'runtime.num_gpus', num_gpus,
             f'at most the {gpus} GPU(s) this machine has')
  why = 'set explicitly' + unused
  if gpus and not num_gpus and requested in ('mirrored', 'one_device',
                                              'multi_worker_mirrored'):
    why += (f'; WARNING: runtime.num_gpus=0 runs on the CPU although {gpus} '
            f'GPU(s) are visible: set runtime.distribution_strategy=auto or '
            f'runtime.num_gpus={gpus}')
  workers = max(1, tf_config_workers(tf_config))
  devices = _cpu_or_gpus(num_gpus, workers if requested ==
                         'multi_worker_mirrored' else 1)
  return Choice(requested, num_gpus, devices, why)


def apply(params, machine: precision.Devices,
          tf_config: Optional[str] = None) -> Tuple[Choice, str]:
  """Resolves the strategy in place (name, num_gpus, devices); returns the
  choice and a line for the job's log."""
  choice = resolve(params.runtime, machine, tf_config)
  params.runtime.distribution_strategy = choice.name
  params.runtime.num_gpus = choice.num_gpus
  if hasattr(params.runtime, 'devices'):
    params.runtime.devices = ', '.join(choice.devices)
  line = (f'strategy: {choice.name} on {", ".join(choice.devices)} '
          f'({choice.why})')
  if 'WARNING' in choice.why:
    logging.warning(line)
  return choice, line


def build(params) -> tf.distribute.Strategy:
  """The tf.distribute strategy of a prepared (resolved) config."""
  return distribute_utils.get_distribution_strategy(
      distribution_strategy=params.runtime.distribution_strategy,
      all_reduce_alg=params.runtime.all_reduce_alg,
      num_gpus=params.runtime.num_gpus,
      tpu_address=params.runtime.tpu)
