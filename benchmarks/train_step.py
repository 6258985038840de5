r"""Pretraining step throughput and peak memory: ours vs Model Garden.

  .venv/bin/python benchmarks/train_step.py [--steps=6 --batch=8] \
      [--precision=float32|bfloat16|float16|auto] [--xla] [--sizes=112]

One device (Model Garden's loss cannot run multi-replica on CPU), the same
random inputs and settings (SGD momentum 0.9, temperature 0.1, weight decay
1e-6, 3-layer projection head to 128), each measurement in a fresh process
so that its peak RSS is its own:
- R3D-50 at 16 x 112 x 112: our `cvrl_r3d` vs Model Garden's video_ssl model
  and contrastive loss, its ResNet3D configured as paper Table 1 (its
  registered experiment pools time after the stem and is not the paper's);
- the small variant (depth 14, width 1; Model Garden gets the same block
  layout, since it has no width multiplier);
- end to end on the demo data (input pipeline + step at the demo settings),
  our pipeline vs Model Garden's video_ssl_input feeding the same model and
  step (Model Garden has no width 0.25), if demo_output/tfrecords exists
  (run scripts/demo.sh first).

--precision sets both sides' Keras mixed-precision policy (float16 with
dynamic loss scaling, Model Garden's optimizer wrapping for both; 'auto' is
what `cvrl.configs.precision` picks for this machine); --xla compiles our
forward and backward pass (task.jit_compile). On a GPU the table adds peak
device memory (scripts/gpu_check.sh runs the GPU variants).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _set_precision(precision):
  """Resolves 'auto' for this machine and sets the Keras policy."""
  from official.modeling import performance  # pylint: disable=g-import-not-at-top
  from cvrl.configs import precision as precision_lib  # pylint: disable=g-import-not-at-top
  dtype, _ = precision_lib.resolve(precision,
                                   precision_lib.local_devices(None))
  performance.set_mixed_precision_policy(dtype)
  return dtype


def _optimizer(dtype):
  """SGD momentum 0.9, loss-scaled for float16 as the trainer does it."""
  import tf_keras  # pylint: disable=g-import-not-at-top
  from official.modeling import performance  # pylint: disable=g-import-not-at-top
  return performance.configure_optimizer(
      tf_keras.optimizers.SGD(0.1, momentum=0.9),
      use_float16=dtype == 'float16')


def _ours_step(depth, width, frames, size, batch, precision='float32',
               xla=False):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from cvrl import registry_imports  # pylint: disable=g-import-not-at-top,unused-import  # noqa: F401
  from cvrl.configs import launch  # pylint: disable=g-import-not-at-top
  from cvrl.tasks import pretrain  # pylint: disable=g-import-not-at-top
  dtype = _set_precision(precision)
  # The paper's experiment, parsed and prepared as `cvrl.tools.train` does it.
  params = launch.parse_experiment('cvrl_pretrain_k400', params_override=(
      f'task.model.backbone.cvrl_r3d.depth={depth},'
      f'task.model.backbone.cvrl_r3d.width_multiplier={width},'
      'task.model.norm_activation.use_sync_bn=false,'
      f'task.train_data.num_frames={frames},'
      f'task.train_data.crop_size={size},'
      f'task.train_data.global_batch_size={batch},'
      'task.train_data.input_path=unused,task.image_summary_clips=0,'
      f'task.jit_compile={str(xla).lower()},'
      f'runtime.mixed_precision_dtype={dtype}'))
  launch.prepare(params)
  task = pretrain.PretrainTask(params.task)
  model = task.build_model()
  optimizer = _optimizer(dtype)
  step = tf.function(lambda x: task.train_step(x, model, optimizer))
  return step, lambda images: {'image': images}


def _mg_model(depth, frames, size):
  """Model Garden's video_ssl pretraining model and loss."""
  import tf_keras  # pylint: disable=g-import-not-at-top
  from official.core import exp_factory  # pylint: disable=g-import-not-at-top
  from official.projects.video_ssl.configs import video_ssl  # pylint: disable=g-import-not-at-top,unused-import  # noqa: F401
  from official.projects.video_ssl.tasks import pretrain as mg_pretrain  # pylint: disable=g-import-not-at-top
  from official.vision.modeling.backbones import resnet_3d  # pylint: disable=g-import-not-at-top
  if depth not in resnet_3d.RESNET_SPECS:
    resnet_3d.RESNET_SPECS[depth] = [('bottleneck3d', f, 1)
                                     for f in (64, 128, 256, 512)]
  config = exp_factory.get_exp_config('video_ssl_pretrain_kinetics400').task
  backbone = config.model.backbone.resnet_3d
  backbone.model_id = depth
  # Its registered backbone is not the paper's (temporal pooling after the
  # stem, kernel 3 in res2/res3, self-gating): configure the paper's Table 1
  # so that both sides do the same arithmetic.
  backbone.stem_pool_temporal_stride = 1
  blocks = [spec[2] for spec in resnet_3d.RESNET_SPECS[depth]]
  backbone.block_specs = tuple(
      {'temporal_strides': 1, 'use_self_gating': False,
       'temporal_kernel_sizes': (kernel,) * repeats}
      for kernel, repeats in zip((1, 1, 3, 3), blocks))
  config.model.norm_activation.use_sync_bn = False
  config.train_data.feature_shape = (frames, size, size, 3)
  config.validation_data.feature_shape = (frames, size, size, 3)
  task = mg_pretrain.VideoSSLPretrainTask(config)
  return task, task.build_model()


def _mg_step(depth, width, frames, size, batch, precision='float32',
             xla=False):
  del width, xla  # Model Garden's task has no XLA switch
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  dtype = _set_precision(precision)
  task, model = _mg_model(depth, frames, size)
  optimizer = _optimizer(dtype)
  step = tf.function(lambda x: task.train_step(x, model, optimizer))
  return step, lambda images: ({'image': images}, tf.zeros([batch], tf.int32))


def _measure_step(which, depth, width, frames, size, batch, steps,
                  precision='float32', xla=False):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tf_keras  # pylint: disable=g-import-not-at-top
  build = _ours_step if which == 'ours' else _mg_step
  step, wrap = build(depth, width, frames, size, batch, precision, xla)
  images = tf.random.stateless_uniform([2 * batch, frames, size, size, 3],
                                       [1, 2])
  # Inputs in the compute dtype, as the pipeline sends them.
  images = tf.cast(images, tf_keras.mixed_precision.global_policy().compute_dtype)
  inputs = wrap(images)
  logs = step(inputs)  # trace and warm up
  step(inputs)
  start = time.perf_counter()
  for _ in range(steps):
    logs = step(inputs)
  rate = steps * batch / (time.perf_counter() - start)
  loss = float(logs['loss'] if 'loss' in logs else logs['total_loss'])
  return rate, loss


def model_garden_demo_input(data):
  """Model Garden's video_ssl_input (Decoder, Parser, PostBatchProcessor,
  is_ssl=True) at the demo's clip shape and batch, on `data.input_path`;
  yields the features dict."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from official.projects.video_ssl.configs import video_ssl as ssl_cfg  # pylint: disable=g-import-not-at-top
  from official.projects.video_ssl.dataloaders import video_ssl_input  # pylint: disable=g-import-not-at-top
  frames, size, batch = data.num_frames, data.crop_size, data.global_batch_size
  params = ssl_cfg.DataConfig(
      input_path=data.input_path, is_training=True, is_ssl=True,
      feature_shape=(frames, size, size, 3), temporal_stride=2,
      global_batch_size=batch, num_classes=8, one_hot=False)
  parser = video_ssl_input.Parser(params)
  post = video_ssl_input.PostBatchProcessor(params)
  dataset = tf.data.Dataset.list_files(data.input_path, shuffle=False)
  dataset = dataset.repeat().interleave(
      tf.data.TFRecordDataset, num_parallel_calls=tf.data.AUTOTUNE)
  dataset = dataset.shuffle(64).map(video_ssl_input.Decoder().decode,
                                    num_parallel_calls=tf.data.AUTOTUNE)
  dataset = dataset.map(parser.parse_fn(True),
                        num_parallel_calls=tf.data.AUTOTUNE)
  dataset = dataset.batch(batch, drop_remainder=True).map(
      post, num_parallel_calls=tf.data.AUTOTUNE)
  return dataset.map(lambda features, label: features).prefetch(
      tf.data.AUTOTUNE)


def demo_data(experiment='cvrl_pretrain_demo', input_path=''):
  """The experiment's training data config (input_path replaced if given)."""
  from official.core import exp_factory  # pylint: disable=g-import-not-at-top
  from cvrl import registry_imports  # pylint: disable=g-import-not-at-top,unused-import  # noqa: F401
  data = exp_factory.get_exp_config(experiment).task.train_data
  return data.replace(input_path=input_path) if input_path else data


def _demo_step(experiment, input_path, precision):
  """(the experiment's train data config, the step both inputs feed): our
  R3D-14 at width 0.25 (Model Garden has none) at the data's clip shape and
  batch, so that only the input pipeline differs."""
  data = demo_data(experiment, input_path)
  step, _ = _ours_step(14, 0.25, data.num_frames, data.crop_size,
                       data.global_batch_size, precision)
  return data, step


def _demo_input(which, data):
  """'ours' (cvrl.data.pipelines) or 'mg' (Model Garden's video_ssl_input)
  on `data`."""
  if which == 'ours':
    from cvrl.data import pipelines  # pylint: disable=g-import-not-at-top
    return pipelines.build_dataset(data)
  return model_garden_demo_input(data)


def _measure_end_to_end(which, steps, precision='float32',
                        experiment='cvrl_pretrain_demo', input_path=''):
  """Demo settings: input pipeline from demo_output (or input_path) + one
  training step."""
  data, step = _demo_step(experiment, input_path, precision)
  batch = data.global_batch_size
  iterator = iter(_demo_input(which, data))
  step(next(iterator))
  step(next(iterator))
  start, cpu = time.perf_counter(), time.process_time()
  for _ in range(steps):
    logs = step(next(iterator))
  seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
  # Core-ms an example (input, step, and the threads' overhead): what the
  # pair costs the machine, steadier on a shared host than the rate.
  return steps * batch / seconds, float(logs['loss']), {
      'core_ms': 1000 * cpu / (steps * batch)}


def _end_to_end_windows(rounds, steps, warmup=3, precision='float32',
                        experiment='cvrl_pretrain_demo', input_path=''):
  """Both inputs feeding one step function in this one process, in
  alternating windows (mg, ours, then ours, mg, ...): each window builds its
  pipeline's iterator afresh, runs `warmup` steps (prefetch buffers fill),
  times `steps` steps and deletes the iterator, so no pipeline works while
  the other is timed. One process gives many more pairs an hour than a
  process per measurement (TF's start-up and tracing is about half of
  such a process), and the two share the traced step, not merely its code.
  Returns {'mg': [(examples/s, core-ms an example)], 'ours': [...]}."""
  data, step = _demo_step(experiment, input_path, precision)
  batch = data.global_batch_size
  datasets = {which: _demo_input(which, data) for which in ('mg', 'ours')}
  windows = {'mg': [], 'ours': []}
  for round_index in range(rounds):
    for which in (('mg', 'ours') if round_index % 2 == 0 else ('ours', 'mg')):
      iterator = iter(datasets[which])
      for _ in range(warmup):
        step(next(iterator))['loss'].numpy()
      start, cpu = time.perf_counter(), time.process_time()
      for _ in range(steps):
        loss = step(next(iterator))['loss']
      loss.numpy()
      seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
      windows[which].append((steps * batch / seconds,
                             1000 * cpu / (steps * batch)))
      del iterator
  return windows


def _child(args):
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  sys.path.insert(0, REPO)
  spec = json.loads(args.child)
  if spec['kind'] == 'step':
    rate, loss = _measure_step(spec['which'], spec['depth'], spec['width'],
                               spec['frames'], spec['size'], spec['batch'],
                               spec['steps'], spec['precision'], spec['xla'])
    extra = {}
  elif spec['kind'] == 'end_to_end_windows':
    print(json.dumps(_end_to_end_windows(
        spec['rounds'], spec['steps'], spec.get('warmup', 3),
        spec['precision'], spec['experiment'], spec['input_path'])))
    return
  else:
    rate, loss, extra = _measure_end_to_end(
        spec['which'], spec['steps'], spec['precision'],
        spec.get('experiment', 'cvrl_pretrain_demo'),
        spec.get('input_path', ''))
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  device_mib = None
  if tf.config.list_physical_devices('GPU'):
    device_mib = tf.config.experimental.get_memory_info('GPU:0')['peak'] / 2**20
  print(json.dumps({'rate': rate, 'peak_mib': peak_mib, 'loss': loss,
                    'device_mib': device_mib, **extra}))


def spawn(spec):
  """One measurement in its own process; {'error': last line} if it fails
  (e.g. Model Garden's float16 step on CPU: no float16 MaxPool3D kernel)."""
  out = subprocess.run(
      [sys.executable, os.path.abspath(__file__), '--child', json.dumps(spec)],
      capture_output=True, text=True, check=False, cwd=REPO)
  if out.returncode:
    errors = [l for l in out.stderr.splitlines() if 'Error' in l]
    return {'error': (errors or out.stderr.splitlines() or ['?'])[-1][:160]}
  return json.loads(out.stdout.strip().splitlines()[-1])


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--steps', type=int, default=6)
  parser.add_argument('--batch', type=int, default=8)
  parser.add_argument('--precision', default='float32',
                      choices=('float32', 'bfloat16', 'float16', 'auto'))
  parser.add_argument('--xla', action='store_true',
                      help='XLA-compile our train step (jit_compile).')
  parser.add_argument('--sizes', default='112',
                      help='Comma-separated crop sizes (e.g. 112,224).')
  parser.add_argument('--no_small', action='store_true',
                      help='Skip the depth-14 rows.')
  parser.add_argument('--only_ours', action='store_true',
                      help='Measure only ours (e.g. XLA rows: Model Garden '
                      'has no XLA switch, its figures would repeat).')
  parser.add_argument('--child', default=None, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    _child(args)
    return
  rows = []
  models = [('R3D-50', 50)] + ([] if args.no_small else
                               [('small (depth 14, width 1)', 14)])
  for size in (int(s) for s in args.sizes.split(',')):
    for name, depth in models:
      label = f'{name}, 16x{size}x{size}'
      for which in ('Model Garden', 'ours'):
        if which != 'ours' and args.only_ours:
          rows.append((label, which, {'error': 'not measured (--only_ours)'}))
          continue
        spec = dict(kind='step', which='ours' if which == 'ours' else 'mg',
                    depth=depth, width=1.0, frames=16, size=size,
                    batch=args.batch, steps=args.steps,
                    precision=args.precision, xla=args.xla)
        rows.append((label, which, spawn(spec)))
  if os.path.isdir(os.path.join(REPO, 'demo_output', 'tfrecords', 'train')) \
      and not args.only_ours:
    for which in ('Model Garden', 'ours'):
      spec = dict(kind='end_to_end', which='ours' if which == 'ours' else 'mg',
                  steps=3 * args.steps, precision=args.precision, xla=False)
      rows.append(('demo end to end (input + step)', which, spawn(spec)))
  print(f'training examples/s (two clips each), peak host RSS (and device '
        f'memory on a GPU), 1 device, batch {args.batch}, precision '
        f'{args.precision}, XLA {"on" if args.xla else "off"} (ours) '
        f'({os.cpu_count()} cores)')
  def figures(r):
    if 'error' in r:
      return f'FAILED ({r["error"]})'
    text = f'{r["rate"]:7.2f} ex/s {r["peak_mib"]:7.0f} MiB'
    if r['device_mib'] is not None:
      text += f' / device {r["device_mib"]:7.0f} MiB'
    return text + f' loss {r["loss"]:.3f}'
  for i in range(0, len(rows), 2):
    (label, _, mg), (_, _, ours) = rows[i], rows[i + 1]
    ratio = ('' if 'error' in mg or 'error' in ours else
             f' | speed ratio {ours["rate"] / mg["rate"]:.2f}')
    print(f'{label:40s} Model Garden {figures(mg)} | ours {figures(ours)}'
          f'{ratio}')


if __name__ == '__main__':
  main()
