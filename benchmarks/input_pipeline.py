r"""Pretraining input throughput: ours vs Model Garden vs the decode ceiling.

  .venv/bin/python benchmarks/input_pipeline.py [--batches=12 --rounds=3]
      [--batch_size=8] [--steps=3] [--demo_records='demo_output/tfrecords/
      train/*.tfrecord'] [--end_to_end_rounds=12] [--end_to_end_only]

Converts the decodable real videos of ../shared/testdata/videos (linked a few
times under distinct names) to TFRecords at short side 256, then measures on
the same files, in one run, two-clip samples/s at 16 x 224 x 224 of:
- ours: `cvrl.data.pipelines` in pretrain mode with the paper's augmentations,
  all of it on the host (augment_on: host), and the host's part only
  (augment_on: device: decode the crop windows of a batch into one uint8
  buffer; resize and per-pixel work are left to the train step);
- Model Garden: `official.projects.video_ssl.dataloaders.video_ssl_input`
  (Decoder, Parser and PostBatchProcessor with is_ssl=True);
- the ceiling: decoding the same 32 JPEG frames per sample and nothing else.
Each pipeline is measured alone, alternating over --rounds
(`measure_alone`); all use AUTOTUNE parallelism and the same batch size.
Then the demo end to end: the main demo's pretraining input
(`cvrl_pretrain_small` on --demo_records, if they exist) and Model Garden's
pipeline on the same records feeding the same step: one process, alternating
windows of each (--end_to_end_rounds x --end_to_end_steps), the ratio of the
mean rates and the rounds' paired ratios with a 95% interval.
Then bytes sent to the device per sample, and (--steps > 0) a pretraining
step of the small R3D (depth 14, width 0.25) on one batch of each mode: the
step with on-device augmentation against the plain step plus the host
augmentation time the device mode saves.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top,wrong-import-position
from benchmarks.convert_throughput import repeated_video_tasks
from cvrl.configs import video_data
from cvrl.data import features
from cvrl.data import host_malloc
from cvrl.data import pipelines
from cvrl.data import window_buffer
from tfrecords_tools.conversion import job
from tfrecords_tools.conversion import video_frames
# pylint: enable=g-import-not-at-top,wrong-import-position

NUM_FRAMES, STRIDE, SIZE = 16, 2, 224


def make_records(work: str, repeats: int) -> str:
  tasks = repeated_video_tasks(work, repeats)
  out = os.path.join(work, 'tfrecords')
  result = job.convert(tasks, out, ['x'], video_frames.ConversionOptions(
      short_side=256), num_shards=4, workers=os.cpu_count() or 1)
  failed = [row for row in result['rows'] if row.get('status') != 'ok']
  if failed:
    raise RuntimeError(f'{len(failed)} of {len(tasks)} benchmark videos did '
                       f'not convert, e.g. {failed[0]["id"]}: '
                       f'{failed[0].get("error")}')
  return os.path.join(out, 'train-*.tfrecord')


def ours_config(pattern: str, batch_size: int,
                augment_on: str = 'host') -> video_data.VideoDataConfig:
  return video_data.VideoDataConfig(
      input_path=pattern, global_batch_size=batch_size, mode='pretrain',
      num_frames=NUM_FRAMES, frame_stride=STRIDE, crop_size=SIZE, seed=0,
      shuffle_buffer_size=16, augment_on=augment_on)


def ours(pattern: str, batch_size: int) -> tf.data.Dataset:
  return pipelines.build_dataset(ours_config(pattern, batch_size))


def ours_device_mode(pattern: str, batch_size: int) -> tf.data.Dataset:
  return pipelines.build_dataset(ours_config(pattern, batch_size, 'device'))


def model_garden(pattern: str, batch_size: int) -> tf.data.Dataset:
  from official.projects.video_ssl.configs import video_ssl as ssl_cfg
  from official.projects.video_ssl.dataloaders import video_ssl_input
  params = ssl_cfg.DataConfig(
      input_path=pattern, is_training=True, is_ssl=True,
      feature_shape=(NUM_FRAMES, SIZE, SIZE, 3), temporal_stride=STRIDE,
      global_batch_size=batch_size, num_classes=1, one_hot=False)
  decoder = video_ssl_input.Decoder()
  parser = video_ssl_input.Parser(params)
  post = video_ssl_input.PostBatchProcessor(params)
  files = sorted(tf.io.gfile.glob(pattern))
  dataset = tf.data.Dataset.from_tensor_slices(files).repeat()
  dataset = dataset.interleave(tf.data.TFRecordDataset, cycle_length=4,
                               num_parallel_calls=tf.data.AUTOTUNE)
  dataset = dataset.shuffle(16)
  dataset = dataset.map(decoder.decode, num_parallel_calls=tf.data.AUTOTUNE)
  dataset = dataset.map(parser.parse_fn(True),
                        num_parallel_calls=tf.data.AUTOTUNE)
  dataset = dataset.batch(batch_size, drop_remainder=True)
  dataset = dataset.map(post, num_parallel_calls=tf.data.AUTOTUNE)
  return dataset.prefetch(tf.data.AUTOTUNE)


def decode_ceiling(pattern: str, batch_size: int) -> tf.data.Dataset:
  """Only the JPEG decoding of 2 x 16 frames per sample."""
  def decode(serialized):
    _, seq = tf.io.parse_single_sequence_example(
        serialized, sequence_features={
            features.IMAGE_KEY: tf.io.FixedLenSequenceFeature([], tf.string)})
    frames = seq[features.IMAGE_KEY]
    indices = tf.range(2 * NUM_FRAMES) % tf.shape(frames)[0]
    return tf.map_fn(lambda f: tf.io.decode_jpeg(f, channels=3),
                     tf.gather(frames, indices),
                     fn_output_signature=tf.TensorSpec([None, None, 3],
                                                       tf.uint8))[:, :8, :8]
  files = sorted(tf.io.gfile.glob(pattern))
  dataset = tf.data.Dataset.from_tensor_slices(files).repeat()
  dataset = dataset.interleave(tf.data.TFRecordDataset, cycle_length=4,
                               num_parallel_calls=tf.data.AUTOTUNE)
  dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
  return dataset.batch(batch_size, drop_remainder=True).prefetch(
      tf.data.AUTOTUNE)


def measure(dataset: tf.data.Dataset, batches: int, batch_size: int,
            warmup: int = 3) -> float:
  iterator = iter(dataset)
  for _ in range(warmup):
    next(iterator)
  start = time.perf_counter()
  for _ in range(batches):
    next(iterator)
  return batches * batch_size / (time.perf_counter() - start)


def measure_alone(builders, pattern: str, batch_size: int, batches: int,
                  rounds: int, warmup: int = 4):
  """samples/s of each pipeline, measured one at a time: in each round
  every pipeline is built afresh, warmed up, timed over `batches` batches
  and deleted before the next starts. (Pipelines alive side by side refill
  their prefetch buffers while another is timed, and AUTOTUNE buffers more
  of small elements than of large ones: that would favour small outputs.)
  Rounds alternate the pipelines so that a shared machine's drift hits all
  alike. builders: {name: (pattern, batch_size) -> dataset}."""
  seconds = {name: 0.0 for name in builders}
  for _ in range(rounds):
    for name, build in builders.items():
      iterator = iter(build(pattern, batch_size))
      for _ in range(warmup):
        next(iterator)
      start = time.perf_counter()
      for _ in range(batches):
        next(iterator)
      seconds[name] += time.perf_counter() - start
      del iterator
  return {name: rounds * batches * batch_size / s
          for name, s in seconds.items()}


def budget_use(pattern: str, batch_size: int, batches: int = 20) -> str:
  """Bytes a sample sends to the device in each mode; for device mode, of
  the buffer's fixed length, how much the windows filled over `batches`
  batches and the fraction of views shrunk to keep within the budget."""
  config = ours_config(pattern, batch_size, 'device')
  length = window_buffer.buffer_length(
      pipelines.device_budget(config, batch_size),
      tuple(config.device_canvas))
  used, shrunk = [], []
  for batch in pipelines.build_dataset(config).take(batches):
    params = batch[pipelines.VIEW_PARAMS].numpy()
    used.append(window_buffer.view_bytes_of(
        NUM_FRAMES, params[..., 0], params[..., 1],
        params[..., window_buffer.LEFT]).sum())
    shrunk.append(params[..., window_buffer.SHRUNK].mean())
  crop = 2 * NUM_FRAMES * SIZE * SIZE * 3
  return (f'bytes sent to the device per sample: host mode float32 '
          f'{4 * crop:,} (bfloat16 {2 * crop:,}); device mode uint8 '
          f'{length // batch_size:,} (buffer {length:,} a batch of '
          f'{batch_size}, device_budget '
          f'{pipelines.budget_fraction(config, batch_size)}: windows '
          f'filled {np.mean(used) / length:.2f} of it on average, '
          f'{np.max(used) / length:.2f} at most; views shrunk to fit: '
          f'{np.mean(shrunk):.4f}) + parameters')


def step_seconds(pattern: str, batch_size: int, steps: int):
  """(plain step on a host-mode batch, step on a device-mode batch), s."""
  import tf_keras  # pylint: disable=g-import-not-at-top
  from official.core import exp_factory  # pylint: disable=g-import-not-at-top
  from cvrl import registry_imports  # pylint: disable=g-import-not-at-top,unused-import  # noqa: F401
  from cvrl.tasks import pretrain  # pylint: disable=g-import-not-at-top
  seconds = []
  for mode in ('host', 'device'):
    config = exp_factory.get_exp_config('cvrl_pretrain_demo').task
    config.train_data = ours_config(pattern, batch_size, mode)
    config.image_summary_clips = 0
    task = pretrain.PretrainTask(config)
    model = task.build_model()
    optimizer = tf_keras.optimizers.SGD(0.1, momentum=0.9)
    batch = next(iter(pipelines.build_dataset(config.train_data)))
    step = tf.function(lambda b: task.train_step(b, model, optimizer))
    step(batch)
    start = time.perf_counter()
    for _ in range(steps):
      step(batch)
    seconds.append((time.perf_counter() - start) / steps)
  return seconds


def add_malloc_flag(parser: argparse.ArgumentParser) -> None:
  parser.add_argument('--tune_malloc', default=True,
                      action=argparse.BooleanOptionalAction,
                      help='glibc malloc as the training command sets it '
                      '(cvrl.data.host_malloc: unasked only on hosts of at '
                      f'most {host_malloc.AUTO_MAX_CPUS} CPUs, --tune_malloc '
                      'forces it; --no-tune_malloc: defaults)')


def apply_malloc_flag(args) -> None:
  """Re-executes this benchmark with the training command's malloc
  settings unless --no-tune_malloc (returns once they apply); says which."""
  if args.tune_malloc:
    print(host_malloc.maybe_reexec())
  else:
    print('host malloc: defaults (--no-tune_malloc)')


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--batches', type=int, default=12)
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--batch_size', type=int, default=8)
  parser.add_argument('--repeats', type=int, default=2)
  parser.add_argument('--steps', type=int, default=3,
                      help='Train steps timed per mode (0: skip).')
  parser.add_argument('--demo_records',
                      default='demo_output/tfrecords/train/*.tfrecord',
                      help='Records for the end-to-end rows (skipped if '
                      'none match).')
  parser.add_argument('--end_to_end_steps', type=int, default=8,
                      help='Timed steps in each end-to-end window.')
  parser.add_argument('--end_to_end_rounds', type=int, default=12,
                      help='Alternating end-to-end rounds (a window of each '
                      'input a round; 30 gave a 95%% interval of +-0.024).')
  parser.add_argument('--end_to_end_only', action='store_true',
                      help='Only the demo rows (input alone, end to end).')
  add_malloc_flag(parser)
  args = parser.parse_args()
  for name in ('end_to_end_steps', 'end_to_end_rounds'):
    if getattr(args, name) < 1:
      parser.error(f'--{name}={getattr(args, name)}: expected at least 1')
  apply_malloc_flag(args)
  if args.end_to_end_only:
    _end_to_end(args)
    return
  work = tempfile.mkdtemp(prefix='input_bench_')
  try:
    pattern = make_records(work, args.repeats)
    host_mode = 'ours, augment_on=host (cvrl.data.pipelines)'
    device_mode = 'ours, augment_on=device (host part)'
    ceiling_name = 'decode-only ceiling'
    model_garden_name = 'Model Garden video_ssl_input'
    rates = measure_alone({ceiling_name: decode_ceiling,
                           model_garden_name: model_garden,
                           host_mode: ours, device_mode: ours_device_mode},
                          pattern, args.batch_size, args.batches, args.rounds)
    cores = os.cpu_count()
    print(f'two-clip samples/s at {NUM_FRAMES}x{SIZE}x{SIZE}, stride '
          f'{STRIDE}, batch {args.batch_size}, {args.rounds} x '
          f'{args.batches} batches each, {cores} cores, records at short '
          'side 256')
    ceiling = rates[ceiling_name]
    for name, rate in rates.items():
      print(f'  {name:44s} {rate:8.2f} samples/s  {rate / ceiling:5.2f} of '
            f'the ceiling  {cores * 1000 / rate:6.1f} core-ms/sample')
    print(f'ours (host mode) / Model Garden = '
          f'{rates[host_mode] / rates[model_garden_name]:.2f}x; device mode '
          f'(host part) / ceiling = {rates[device_mode] / ceiling:.2f}')
    _end_to_end(args)
    print(budget_use(pattern, args.batch_size))
    if args.steps:
      plain, on_device = step_seconds(pattern, args.batch_size, args.steps)
      saved = args.batch_size / rates[host_mode] - (
          args.batch_size / rates[device_mode])
      print(f'train step, R3D-14 w0.25 at {NUM_FRAMES}x{SIZE}x{SIZE}, batch '
            f'{args.batch_size}: plain {plain:.2f} s + host augmentation '
            f'{saved:.2f} s = {plain + saved:.2f} s; with on-device '
            f'augmentation {on_device:.2f} s (ratio '
            f'{on_device / (plain + saved):.2f})')
  finally:
    shutil.rmtree(work, ignore_errors=True)


def _end_to_end(args):
  """The main demo's input (cvrl_pretrain_small) and Model Garden's on the
  same records: first each input alone, then both feeding the same step in
  alternating windows of one process (a shared machine drifts)."""
  from benchmarks import train_step  # pylint: disable=g-import-not-at-top
  if not tf.io.gfile.glob(args.demo_records):
    print(f'end to end: no records match {args.demo_records} (run '
          'scripts/demo.sh first); skipped')
    return
  data = train_step.demo_data('cvrl_pretrain_small',
                              os.path.abspath(args.demo_records))
  alone = measure_alone(
      {'mg': lambda *_: train_step.model_garden_demo_input(data),
       'ours': lambda *_: pipelines.build_dataset(data)},
      '', data.global_batch_size, max(2, args.batches // 4), args.rounds)
  print(f'demo input alone ({data.num_frames}x{data.crop_size}x'
        f'{data.crop_size}, batch {data.global_batch_size}): Model Garden '
        f'{alone["mg"]:.2f}, ours {alone["ours"]:.2f} examples/s = '
        f'{alone["ours"] / alone["mg"]:.2f}x')
  result = train_step.spawn(dict(
      kind='end_to_end_windows', rounds=args.end_to_end_rounds,
      steps=args.end_to_end_steps, precision='float32',
      experiment='cvrl_pretrain_small', input_path=data.input_path))
  if 'error' in result:
    print(f'end to end: FAILED {result["error"]}')
    return
  print(end_to_end_summary(result, args.end_to_end_steps))


def end_to_end_summary(windows, steps: int) -> str:
  """The end-to-end lines from {'mg'|'ours': [(examples/s, core-ms)]}, the
  windows of one process in alternating order: ratio of the mean rates,
  and the mean of the rounds' paired ratios with its 95% interval (a
  shared 2-core machine moves single windows by 10-20%)."""
  mg, ours = np.asarray(windows['mg']), np.asarray(windows['ours'])
  paired = ours[:, 0] / mg[:, 0]
  low, high = _interval(paired)
  cheaper = mg[:, 1].mean() / ours[:, 1].mean()
  return (
      f'demo end to end (cvrl_pretrain_small input + the same R3D-14 step, '
      f'one process, {len(paired)} alternating rounds of {steps} steps): '
      f'Model Garden {mg[:, 0].mean():.2f}, ours {ours[:, 0].mean():.2f} '
      f'examples/s = {ours[:, 0].mean() / mg[:, 0].mean():.2f}x; paired '
      f'rounds {paired.mean():.3f}x, 95% interval [{low:.3f}, {high:.3f}] '
      f'(single rounds {paired.min():.2f}-{paired.max():.2f})\n'
      f'demo end to end, core-ms an example (input + step, all threads): '
      f'Model Garden {mg[:, 1].mean():.1f}, ours {ours[:, 1].mean():.1f} = '
      f'{cheaper:.2f}x cheaper')


def _interval(values: np.ndarray):
  """Student-t 95% interval of the mean (the mean twice for one value)."""
  if len(values) < 2:
    return values.mean(), values.mean()
  from scipy import stats  # pylint: disable=g-import-not-at-top
  half = (stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) /
          np.sqrt(len(values)))
  return values.mean() - half, values.mean() + half


if __name__ == '__main__':
  main()
