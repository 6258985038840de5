"""What an experiment config still needs when a job starts, in one place.

Every command (`cvrl.tools.train`, `cvrl.tools.export_features`) parses
Model Garden's flags (`--experiment`, `--config_file`, `--params_override`,
`--tpu`) with `parse_flags`; programs and benchmarks use `parse_experiment`
(the same strict overrides); all call `prepare` right before the config is
locked:

  params = launch.parse_flags(FLAGS)   # or parse_experiment(name, ...)
  lines = launch.prepare(params)       # schedule from epochs, precision
  params.lock()

`prepare` counts the records of the inputs it is asked to check (and of a
training input whose num_examples is 0: `dataset_size.check`), derives the
step counts from epochs and the dataset size (`schedule.derive`), resolves
an `auto` strategy for this machine (`strategy.apply`), `auto` precision
and `augment_on: auto` for the devices that strategy computes on
(`precision.apply`, `resolve_augment_on`); the numbers
land in the config, so the params.yaml written next holds what the run
used. It returns the lines to log.
"""

import difflib
import json
import os
import re
from typing import List, Optional, Sequence

from absl import logging
import yaml

from official.core import config_definitions as cfg
from official.core import exp_factory
from official.core import train_utils
from official.modeling import hyperparams

from cvrl import files
from cvrl.configs import base
from cvrl.configs import precision
from cvrl.configs import schedule
from cvrl.configs import strategy
from cvrl.data import dataset_size


def registered_experiments() -> List[str]:
  """Names of the registered experiments, sorted."""
  return sorted(exp_factory._REGISTERED_CONFIGS)  # pylint: disable=protected-access


def check_experiment(name: str) -> None:
  """ConfigError naming the closest registered names if `name` is not one."""
  names = registered_experiments()
  if name in names:
    return
  close = difflib.get_close_matches(name or '', names, n=3, cutoff=0.5)
  hint = f'did you mean {", ".join(close)}? ' if close else ''
  raise base.ConfigError(
      f'--experiment={name!r} is not a registered experiment: {hint}'
      'list them all with --list_experiments')


def _flat_keys(tree, prefix: str = '') -> List[str]:
  keys = []
  for key, value in (tree or {}).items():
    path = f'{prefix}{key}'
    keys.append(path)
    if isinstance(value, dict):
      keys.extend(_flat_keys(value, path + '.'))
  return keys


def _override_keys(params_override: str, config_files) -> List[str]:
  """Dotted keys a user asked to set: `a.b=1,...` strings and YAML files."""
  keys = []
  for item in re.finditer(r'(?:^|,)\s*([A-Za-z_][\w.]*)\s*[=:]',
                          params_override or ''):
    keys.append(item.group(1))
  for path in config_files or []:
    with files.open_file(path) as f:
      keys.extend(_flat_keys(yaml.safe_load(f)))
  return keys


def unknown_key_error(experiment: str, params_override: str, config_files,
                      error: Exception) -> base.ConfigError:
  """A one-line error naming the misspelt override key and the closest
  valid keys of the experiment."""
  valid = _flat_keys(exp_factory.get_exp_config(experiment).as_dict())
  unknown = [k for k in _override_keys(params_override, config_files)
             if k not in valid]
  if not unknown:
    return base.ConfigError(f'override: {error}')
  key = unknown[0]
  close = difflib.get_close_matches(key, valid, n=3, cutoff=0.6)
  hint = (f'closest valid keys: {", ".join(close)}' if close else
          'see the experiment\'s params.yaml for the valid keys')
  return base.ConfigError(f'override key {key!r} does not exist in '
                          f'--experiment={experiment}: {hint}')


def parse_flags(flags_obj) -> cfg.ExperimentConfig:
  """The experiment named by Model Garden's flags (official.common.flags),
  with --config_file and --params_override applied strictly, unlocked.
  An unknown experiment or override key is a ConfigError naming the
  closest valid names."""
  check_experiment(flags_obj.experiment)
  try:
    return train_utils.parse_configuration(flags_obj, lock_return=False)
  except KeyError as e:
    raise unknown_key_error(flags_obj.experiment, flags_obj.params_override,
                            flags_obj.config_file, e) from e


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
            devices: Optional[precision.Devices] = None,
            check_sizes: Sequence[str] = (),
            tf_config: Optional[str] = None,
            training: bool = True, model_dir: str = '') -> List[str]:
  """Derives the sizes, schedule, strategy and precision in place; logs and
  returns them.

  devices: this machine's (default: the TPU named in runtime.tpu, or the
  local GPUs, or the CPU). check_sizes: the task's input sections whose
  records are counted and checked ('train_data', 'validation_data'); a
  training input with num_examples <= 0 is always counted. tf_config: the
  TF_CONFIG of a multi-worker job (default: the environment's). training:
  False for jobs that only run the model (feature export): no schedule.
  model_dir: a training job's; its record_counts.json shares the counts
  between the workers of a multi-worker job (the chief counts) and with
  restarts (`dataset_size.SharedCounts`).
  """
  if devices is None:
    devices = precision.local_devices(params.runtime.tpu)
  if tf_config is None:
    tf_config = os.environ.get('TF_CONFIG')
  sections = list(check_sizes)
  train = getattr(params.task, 'train_data', None)
  if ('train_data' not in sections and train is not None
      and getattr(train, 'num_examples', 1) <= 0
      and getattr(params.trainer, 'epochs', 0)):
    sections.insert(0, 'train_data')
  lines = dataset_size.resolve_num_classes(params, required=training)
  if training:
    shared = (dataset_size.SharedCounts(model_dir, is_chief(tf_config))
              if model_dir else None)
    lines.extend(dataset_size.check(params, sections, shared=shared))
    derived = schedule.derive(params)
    lines.extend(schedule.describe(derived, params).split('\n'))
  choice, line = strategy.apply(params, devices, tf_config)
  lines.append(line)
  compute = choice.compute_devices(devices)
  lines.append(precision.apply(params, compute))
  lines.extend(resolve_augment_on(params, compute))
  for line in lines:
    logging.info('%s', line)
  return lines


def is_chief(tf_config: Optional[str]) -> bool:
  """Whether this process is a multi-worker job's chief: TF_CONFIG's task
  is 'chief', or worker 0 of a cluster without one (one process: yes)."""
  if not tf_config:
    return True
  try:
    config = json.loads(tf_config)
  except ValueError as e:
    raise base.ConfigError(f'TF_CONFIG={tf_config!r}: not JSON ({e})') from e
  task = config.get('task') or {}
  kind, index = task.get('type', 'worker'), int(task.get('index', 0))
  if kind == 'chief':
    return True
  return (kind == 'worker' and index == 0 and
          'chief' not in (config.get('cluster') or {}))


def resolve_augment_on(params: cfg.ExperimentConfig,
                       devices: precision.Devices) -> List[str]:
  """`augment_on: auto` -> 'device' when the job computes on TPUs or GPUs
  (the host only decodes; resize and per-pixel work run in the step), else
  'host' (on a CPU the step would do the same work on the same cores).
  In place; returns the lines to log."""
  lines = []
  for name in ('train_data', 'validation_data'):
    data = getattr(params.task, name, None)
    if getattr(data, 'augment_on', None) != 'auto':
      continue
    kind = devices.kind
    data.augment_on = 'host' if kind == 'cpu' else 'device'
    lines.append(f'task.{name}.augment_on: auto -> {data.augment_on} '
                 f'(computing on {kind})')
  return lines
