"""What an experiment config still needs when a job starts, in one place.

Every command (`cvrl.tools.train`, `cvrl.tools.export_features`) parses
Model Garden's flags (`--experiment`, `--config_file`, `--params_override`,
`--tpu`) with `parse_flags`; programs and benchmarks use `parse_experiment`
(the same strict overrides); all call `prepare` right before the config is
locked:

  params = launch.parse_flags(FLAGS)   # or parse_experiment(name, ...)
  lines = launch.prepare(params)       # schedule from epochs, precision
  params.lock()

`prepare` derives the step counts from epochs and the dataset size
(`schedule.derive`) and resolves `auto` precision for the devices of this
job (`precision.apply`); the numbers land in the config, so the params.yaml
written next holds what the run used. It returns the lines to log.
"""

from typing import List, Optional, Sequence

from absl import logging

from official.core import config_definitions as cfg
from official.core import exp_factory
from official.core import train_utils
from official.modeling import hyperparams

from cvrl.configs import precision
from cvrl.configs import schedule


def parse_flags(flags_obj) -> cfg.ExperimentConfig:
  """The experiment named by Model Garden's flags (official.common.flags),
  with --config_file and --params_override applied strictly, unlocked."""
  return train_utils.parse_configuration(flags_obj, lock_return=False)


def parse_experiment(experiment: str,
                     config_files: Optional[Sequence[str]] = None,
                     params_override: str = '') -> cfg.ExperimentConfig:
  """The registered experiment with YAML files then `key=value,...` applied
  (strict: a misspelt key fails), as Model Garden's train_utils does."""
  params = exp_factory.get_exp_config(experiment)
  for path in config_files or []:
    params = hyperparams.override_params_dict(params, path, is_strict=True)
  if params_override:
    params = hyperparams.override_params_dict(params, params_override,
                                              is_strict=True)
  return params


def prepare(params: cfg.ExperimentConfig,
            devices: Optional[precision.Devices] = None) -> List[str]:
  """Derives the schedule and the precision in place; logs and returns them.

  devices: what the job runs on (default: the TPU named in runtime.tpu, or
  this machine's GPUs, or its CPU).
  """
  if devices is None:
    devices = precision.local_devices(params.runtime.tpu)
  derived = schedule.derive(params)
  lines = schedule.describe(derived, params).split('\n')
  lines.append(precision.apply(params, devices))
  for line in lines:
    logging.info('%s', line)
  return lines
