"""The strategy follows the machine: 'auto' resolution, precision for the
devices the strategy uses, and what lands in params.yaml."""

import json

import pytest

from official.core import exp_factory
from official.core import train_utils
from official.modeling import hyperparams

from cvrl import registry_imports  # pylint: disable=unused-import  # noqa: F401
from cvrl.configs import base
from cvrl.configs import launch
from cvrl.configs import precision
from cvrl.configs import strategy

TPU = precision.Devices(tpu=True)
CPU = precision.Devices()
PAPER_RECIPES = ('cvrl_pretrain_k400', 'cvrl_pretrain_k600',
                 'cvrl_linear_eval_k400', 'cvrl_ucf101_finetune',
                 'cvrl_ava_detection', 'cvrl_semi_supervised_k400_1pct')


def gpus(n, capability=(8, 0)):
  return precision.Devices(gpu_capabilities=(capability,) * n)


def tf_config(workers):
  return json.dumps({'cluster': {'worker': [f'host{i}:2222'
                                            for i in range(workers)]},
                     'task': {'type': 'worker', 'index': 0}})


@pytest.mark.parametrize('name', PAPER_RECIPES + ('cvrl_pretrain_demo',))
def test_every_recipe_asks_for_auto(name):
  assert exp_factory.get_exp_config(name).runtime.distribution_strategy == (
      'auto')


@pytest.mark.parametrize('machine,tpu,config,want,num_gpus,devices', [
    (CPU, '', None, 'one_device', 0, '/cpu:0'),
    (gpus(1), '', None, 'mirrored', 1, '/gpu:0'),
    (gpus(8), '', None, 'mirrored', 8, ', '.join(f'/gpu:{i}'
                                                  for i in range(8))),
    (gpus(4), '', tf_config(2), 'multi_worker_mirrored', 4,
     '/gpu:0 on each of 2 workers'),
    (CPU, '', tf_config(3), 'multi_worker_mirrored', 0,
     '/cpu:0 on each of 3 workers'),
    (gpus(2), '', tf_config(1), 'mirrored', 2, '/gpu:0, /gpu:1'),
    (TPU, 'my-tpu', None, 'tpu', 0, 'TPU my-tpu'),
])
def test_auto_picks_what_the_machine_has(machine, tpu, config, want, num_gpus,
                                         devices):
  params = exp_factory.get_exp_config('cvrl_pretrain_k400')
  params.runtime.tpu = tpu
  choice, line = strategy.apply(params, machine, config)
  assert choice.name == want and params.runtime.distribution_strategy == want
  assert params.runtime.num_gpus == num_gpus
  assert params.runtime.devices.startswith(devices)
  assert line.startswith(f'strategy: {want} on {devices}')


def test_tpu_without_address_runs_on_the_gpus_not_the_cpu():
  # A user's case: 'tpu' in the config, no --tpu, a GPU machine.
  params = exp_factory.get_exp_config('cvrl_pretrain_k400')
  params.runtime.distribution_strategy = 'tpu'
  choice, line = strategy.apply(params, gpus(2, (9, 0)))
  assert choice.name == 'mirrored' and params.runtime.num_gpus == 2
  assert "'tpu' without --tpu" in line


def test_a_tpu_host_run_without_tpu_says_so_and_computes_on_the_cpu():
  """A Cloud TPU VM shows its TPU devices; without --tpu the job runs on the
  CPU in float32, and the strategy line warns naming the flag."""
  params = exp_factory.get_exp_config('cvrl_pretrain_k400')
  lines = launch.prepare(params, precision.Devices(unused_tpus=4),
                         tf_config='')
  text = '\n'.join(lines)
  assert params.runtime.distribution_strategy == 'one_device'
  assert 'WARNING: 4 TPU device(s) visible but not used: give --tpu=local' in (
      text)
  assert params.runtime.mixed_precision_dtype == 'float32'
  params = exp_factory.get_exp_config('cvrl_pretrain_k400')
  text = '\n'.join(launch.prepare(params, CPU, tf_config=''))
  assert 'TPU device' not in text
  # An explicit strategy keeps the warning.
  params = exp_factory.get_exp_config('cvrl_pretrain_k400')
  params.runtime.distribution_strategy = 'mirrored'
  text = '\n'.join(launch.prepare(params, precision.Devices(unused_tpus=4),
                                  tf_config=''))
  assert params.runtime.distribution_strategy == 'mirrored'
  assert 'WARNING: 4 TPU device(s) visible but not used' in text


def test_explicit_cpu_strategy_on_a_gpu_machine_warns_and_computes_float32():
  params = exp_factory.get_exp_config('cvrl_pretrain_k400')
  params.runtime.distribution_strategy = 'mirrored'
  params.runtime.num_gpus = 0
  lines = launch.prepare(params, gpus(4, (9, 0)), tf_config='')
  text = '\n'.join(lines)
  assert 'WARNING: runtime.num_gpus=0 runs on the CPU' in text
  assert 'runtime.num_gpus=4' in text
  # Precision follows the strategy's devices (the CPU), not the machine's
  # GPUs: bfloat16 would be emulated on the CPU.
  assert params.runtime.mixed_precision_dtype == 'float32'
  assert 'precision: float32 on cpu' in text


def test_precision_follows_the_gpus_the_strategy_uses():
  params = exp_factory.get_exp_config('cvrl_pretrain_k400')
  launch.prepare(params, gpus(8, (7, 0)), tf_config='')  # 8 x V100
  assert params.runtime.distribution_strategy == 'mirrored'
  assert params.runtime.mixed_precision_dtype == 'float16'
  params = exp_factory.get_exp_config('cvrl_pretrain_k400')
  launch.prepare(params, CPU, tf_config='')
  assert params.runtime.distribution_strategy == 'one_device'
  assert params.runtime.mixed_precision_dtype == 'float32'


def test_bad_values_are_named_errors():
  params = exp_factory.get_exp_config('cvrl_pretrain_k400')
  params.runtime.distribution_strategy = 'mirorred'
  with pytest.raises(base.ConfigError, match='runtime.distribution_strategy'):
    strategy.apply(params, CPU)
  params.runtime.distribution_strategy = 'mirrored'
  params.runtime.num_gpus = 3
  with pytest.raises(base.ConfigError, match='runtime.num_gpus=3'):
    strategy.apply(params, gpus(2))
  with pytest.raises(base.ConfigError, match='TF_CONFIG'):
    strategy.tf_config_workers('{not json')


def test_resolved_strategy_and_devices_are_in_params_yaml(tmp_path):
  params = exp_factory.get_exp_config('cvrl_linear_eval_k400')
  launch.prepare(params, gpus(2, (9, 0)), tf_config='')
  train_utils.serialize_config(params, str(tmp_path))
  saved = hyperparams.read_yaml_to_params_dict(str(tmp_path / 'params.yaml'))
  runtime = saved.as_dict()['runtime']
  assert runtime['distribution_strategy'] == 'mirrored'
  assert runtime['num_gpus'] == 2
  assert runtime['devices'] == '/gpu:0, /gpu:1'
  assert runtime['mixed_precision_dtype'] == 'bfloat16'


def test_cpu_strategy_builds_on_this_machine():
  params = exp_factory.get_exp_config('cvrl_pretrain_demo')
  strategy.apply(params, CPU, '')
  built = strategy.build(params)
  assert built.num_replicas_in_sync == 1
  assert 'CPU' in built.extended.worker_devices[0]
