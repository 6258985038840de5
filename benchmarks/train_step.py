r"""Pretraining step throughput and peak memory: ours vs Model Garden.

  .venv/bin/python benchmarks/train_step.py [--steps=6 --batch=8]

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
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ours_step(depth, width, frames, size, batch):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tf_keras  # pylint: disable=g-import-not-at-top
  from official.core import exp_factory  # pylint: disable=g-import-not-at-top
  from cvrl import registry_imports  # pylint: disable=g-import-not-at-top,unused-import  # noqa: F401
  from cvrl.tasks import pretrain  # pylint: disable=g-import-not-at-top
  config = exp_factory.get_exp_config('cvrl_pretrain_k400').task
  config.model.backbone.cvrl_r3d.depth = depth
  config.model.backbone.cvrl_r3d.width_multiplier = width
  config.model.norm_activation.use_sync_bn = False
  config.train_data.num_frames, config.train_data.crop_size = frames, size
  config.train_data.input_path = 'unused'
  config.image_summary_clips = 0
  task = pretrain.PretrainTask(config)
  model = task.build_model()
  optimizer = tf_keras.optimizers.SGD(0.1, momentum=0.9)
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
  return task, task.build_model(), tf_keras.optimizers.SGD(0.1, momentum=0.9)


def _mg_step(depth, width, frames, size, batch):
  del width
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  task, model, optimizer = _mg_model(depth, frames, size)
  step = tf.function(lambda x: task.train_step(x, model, optimizer))
  return step, lambda images: ({'image': images}, tf.zeros([batch], tf.int32))


def _measure_step(which, depth, width, frames, size, batch, steps):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  build = _ours_step if which == 'ours' else _mg_step
  step, wrap = build(depth, width, frames, size, batch)
  images = tf.random.stateless_uniform([2 * batch, frames, size, size, 3],
                                       [1, 2])
  inputs = wrap(images)
  step(inputs)  # trace and warm up
  step(inputs)
  start = time.perf_counter()
  for _ in range(steps):
    step(inputs)
  return steps * batch / (time.perf_counter() - start)


def _measure_end_to_end(which, steps):
  """Demo settings: input pipeline from demo_output + one training step."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from official.core import exp_factory  # pylint: disable=g-import-not-at-top
  from cvrl import registry_imports  # pylint: disable=g-import-not-at-top,unused-import  # noqa: F401
  demo = exp_factory.get_exp_config('cvrl_pretrain_demo').task
  data = demo.train_data
  frames, size, batch = data.num_frames, data.crop_size, data.global_batch_size
  # The same model and step (ours: Model Garden has no width 0.25) for both,
  # so the difference is the input pipeline.
  step, _ = _ours_step(14, 0.25, frames, size, batch)
  if which == 'ours':
    from cvrl.data import pipelines  # pylint: disable=g-import-not-at-top
    dataset = pipelines.build_dataset(data)
  else:
    from official.projects.video_ssl.configs import video_ssl as ssl_cfg  # pylint: disable=g-import-not-at-top
    from official.projects.video_ssl.dataloaders import video_ssl_input  # pylint: disable=g-import-not-at-top
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
    dataset = dataset.map(lambda features, label: features).prefetch(
        tf.data.AUTOTUNE)
  iterator = iter(dataset)
  step(next(iterator))
  step(next(iterator))
  start = time.perf_counter()
  for _ in range(steps):
    step(next(iterator))
  return steps * batch / (time.perf_counter() - start)


def _child(args):
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  sys.path.insert(0, REPO)
  spec = json.loads(args.child)
  if spec['kind'] == 'step':
    rate = _measure_step(spec['which'], spec['depth'], spec['width'],
                         spec['frames'], spec['size'], spec['batch'],
                         spec['steps'])
  else:
    rate = _measure_end_to_end(spec['which'], spec['steps'])
  peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  print(json.dumps({'rate': rate, 'peak_mib': peak_mib}))


def _spawn(spec):
  out = subprocess.run(
      [sys.executable, os.path.abspath(__file__), '--child', json.dumps(spec)],
      capture_output=True, text=True, check=True, cwd=REPO)
  return json.loads(out.stdout.strip().splitlines()[-1])


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--steps', type=int, default=6)
  parser.add_argument('--batch', type=int, default=8)
  parser.add_argument('--child', default=None, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    _child(args)
    return
  rows = []
  for label, depth, width, frames, size in (
      ('R3D-50, 16x112x112', 50, 1.0, 16, 112),
      ('small (depth 14, width 1), 16x112x112', 14, 1.0, 16, 112)):
    for which in ('Model Garden', 'ours'):
      spec = dict(kind='step', which='ours' if which == 'ours' else 'mg',
                  depth=depth, width=width, frames=frames, size=size,
                  batch=args.batch, steps=args.steps)
      rows.append((label, which, _spawn(spec)))
  if os.path.isdir(os.path.join(REPO, 'demo_output', 'tfrecords', 'train')):
    for which in ('Model Garden', 'ours'):
      spec = dict(kind='end_to_end', which='ours' if which == 'ours' else 'mg',
                  steps=3 * args.steps)
      rows.append(('demo end to end (input + step)', which, _spawn(spec)))
  print(f'training examples/s (two clips each) and peak RSS, 1 CPU device, '
        f'batch {args.batch} ({os.cpu_count()} cores)')
  for i in range(0, len(rows), 2):
    (label, _, mg), (_, _, ours) = rows[i], rows[i + 1]
    print(f'{label:40s} Model Garden {mg["rate"]:7.2f} ex/s '
          f'{mg["peak_mib"]:7.0f} MiB | ours {ours["rate"]:7.2f} ex/s '
          f'{ours["peak_mib"]:7.0f} MiB | speed ratio '
          f'{ours["rate"] / mg["rate"]:.2f}')


if __name__ == '__main__':
  main()
