r"""The faults a long job meets, caused for real and timed: what was killed,
when, what was lost, how long recovery took.

  python benchmarks/faults.py [--work_dir=/tmp/cvrl_faults] [--videos=72]
      [--frames=300] [--size=256] [--kill_after=4] [--steps=12]

1. Conversion: `convert_videos --workers=2` on synthetic mp4s, once clean
   and once with one worker SIGKILLed --kill_after seconds after the pool
   started; then the killed job's output is compared with the clean one
   (records byte for byte) and a plain rerun of it is timed (it keeps
   every shard).
2. Training: the demo's model (`cvrl_pretrain_demo` at test size) run for
   --steps steps uninterrupted; the same command sent SIGTERM after step
   3 (checkpoints every 100 steps: none of its own before the end), the
   time to exit, the step it saved, the rerun to the end, and whether the
   final weights equal the uninterrupted run's.
3. A damaged checkpoint: the last checkpoint of a finished run cut to half
   its bytes, the same command run again: what it says, the steps trained
   again, the time.
"""

import argparse
import glob
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=REPO)


def _children(pid):
  found = []
  for task in os.listdir(f'/proc/{pid}/task'):
    try:
      with open(f'/proc/{pid}/task/{task}/children') as f:
        found += [int(c) for c in f.read().split()]
    except OSError:
      pass
  return found


def _records(folder):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  out = {}
  for path in sorted(glob.glob(f'{folder}/*.tfrecord')):
    out[os.path.basename(path)] = list(
        tf.data.TFRecordDataset(path).as_numpy_iterator())
  return out


def conversion(work, args):
  from tfrecords_tools.datasets import synthetic  # pylint: disable=g-import-not-at-top
  videos = os.path.join(work, 'videos')
  if not os.path.exists(os.path.join(videos, 'train.csv')):
    synthetic.make_dataset(videos, videos_per_class=args.videos // 8,
                           val_fraction=0.0, num_frames=args.frames,
                           size=args.size, fps=25, seed=0)
  command = [sys.executable, '-m', 'tfrecords_tools.convert_videos',
             f'--input_csv={videos}/train.csv', f'--video_root={videos}',
             '--workers=2', '--num_shards=4', '--short_side=0']
  clean, killed = os.path.join(work, 'clean'), os.path.join(work, 'killed')
  for folder in (clean, killed):
    shutil.rmtree(folder, ignore_errors=True)
  start = time.time()
  subprocess.run(command + [f'--output_dir={clean}'], env=ENV, check=True,
                 capture_output=True)
  clean_s = time.time() - start
  start = time.time()
  proc = subprocess.Popen(command + [f'--output_dir={killed}'], env=ENV,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
  pool_seen, killed_at = None, None
  while proc.poll() is None:
    workers = _children(proc.pid)
    if len(workers) >= 2 and pool_seen is None:
      pool_seen = time.time()
    if pool_seen and time.time() - pool_seen >= args.kill_after:
      os.kill(workers[0], signal.SIGKILL)
      killed_at = time.time() - start
      break
    time.sleep(0.05)
  out, err = proc.communicate()
  killed_s = time.time() - start
  summary = [l for l in out.splitlines() if 'videos:' in l]
  same = _records(killed) == _records(clean)
  start = time.time()
  rerun = subprocess.run(command + [f'--output_dir={killed}'], env=ENV,
                         check=True, capture_output=True, text=True)
  rerun_s = time.time() - start
  print(f'conversion, {args.videos} videos of {args.frames} frames at '
        f'{args.size}x{args.size}, --workers=2:')
  print(f'  clean: {clean_s:.1f} s')
  print(f'  one worker SIGKILLed at {killed_at:.1f} s: the job finished in '
        f'{killed_s:.1f} s, exit {proc.returncode}; '
        f'{summary[0] if summary else out[-200:]}')
  print(f'  "a conversion worker died" logged: '
        f'{"a conversion worker died" in err}; records equal to the clean '
        f'run\'s: {same}')
  print(f'  plain rerun of the killed job\'s folder: {rerun_s:.1f} s '
        f'({"resuming" in rerun.stderr and "kept" or "converted"})')


def _train_command(records, model_dir, steps, extra=()):
  override = ','.join([
      f'task.train_data.input_path={records}/train/train-*.tfrecord',
      f'task.validation_data.input_path={records}/val/val-*.tfrecord',
      'task.train_data.global_batch_size=4',
      'task.validation_data.global_batch_size=4',
      'task.train_data.num_frames=8', 'task.validation_data.num_frames=8',
      'task.model.backbone.cvrl_r3d.width_multiplier=0.25',
      'task.model.projection_head.hidden_dim=32',
      f'trainer.train_steps={steps}', 'trainer.steps_per_loop=1',
      'trainer.summary_interval=1', 'trainer.checkpoint_interval=100',
      'trainer.validation_interval=1000', *extra])
  return [sys.executable, '-m', 'cvrl.tools.train',
          '--experiment=cvrl_pretrain_demo', '--mode=train',
          f'--model_dir={model_dir}', f'--params_override={override}']


def _weights(prefix):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  reader = tf.train.load_checkpoint(prefix)
  return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
          if k.startswith('backbone/') and 'OPTIMIZER' not in k}


def _max_difference(a, b):
  wa, wb = _weights(a), _weights(b)
  return max(float(np.abs(wa[k] - wb[k]).max()) for k in wa)


def training(work, args):
  from tfrecords_tools.conversion import job  # pylint: disable=g-import-not-at-top
  from tfrecords_tools.conversion import sources  # pylint: disable=g-import-not-at-top
  from tfrecords_tools.conversion import video_frames  # pylint: disable=g-import-not-at-top
  from tfrecords_tools.datasets import synthetic  # pylint: disable=g-import-not-at-top
  data = os.path.join(work, 'demo_videos')
  records = os.path.join(work, 'demo_records')
  if not os.path.exists(os.path.join(records, 'val')):
    synthetic.make_dataset(data, videos_per_class=4, val_fraction=0.25,
                           num_frames=24, size=32, fps=12, seed=0)
    labels = sources.read_label_map(os.path.join(data, 'label_map.txt'))
    for split in ('train', 'val'):
      job.convert(job.read_tasks(os.path.join(data, f'{split}.csv'), data,
                                 split), os.path.join(records, split), labels,
                  video_frames.ConversionOptions(short_side=0), 2)
  clean = os.path.join(work, 'run_clean')
  shutil.rmtree(clean, ignore_errors=True)
  start = time.time()
  subprocess.run(_train_command(records, clean, args.steps), env=ENV,
                 check=True, capture_output=True)
  clean_s = time.time() - start
  run = os.path.join(work, 'run_preempted')
  shutil.rmtree(run, ignore_errors=True)
  command = _train_command(records, run, args.steps)
  run_start = time.time()
  proc = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  for line in proc.stdout:
    if line.startswith(f'progress: step 3/{args.steps}'):
      break
  sent = time.time()
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate()
  exit_s = time.time() - sent
  stopped = [l for l in err.splitlines() if 'stopped by SIGTERM' in l]
  start = time.time()
  rerun = subprocess.run(command, env=ENV, check=True, capture_output=True,
                         text=True)
  rerun_s = time.time() - start
  resumed = [l for l in rerun.stderr.splitlines() if 'resuming at step' in l]
  difference = _max_difference(f'{clean}/ckpt-{args.steps}',
                               f'{run}/ckpt-{args.steps}')
  print(f'training, the demo\'s model at test size, {args.steps} steps '
        f'(uninterrupted: {clean_s:.1f} s):')
  print(f'  SIGTERM {sent - run_start:.1f} s into the run, after step 3: exit '
        f'{proc.returncode} {exit_s:.1f} s later; '
        f'{stopped[0].split("train: ")[-1] if stopped else "no line"}')
  print(f'  rerun: {rerun_s:.1f} s to the end, '
        f'{resumed[0].split("] ")[-1] if resumed else "no resume"}; final '
        f'weights against the uninterrupted run: max |difference| '
        f'{difference:.2e}')
  damaged = os.path.join(work, 'run_damaged')
  shutil.rmtree(damaged, ignore_errors=True)
  shutil.copytree(run, damaged)
  data_file = f'{damaged}/ckpt-{args.steps}.data-00000-of-00001'
  with open(data_file, 'r+b') as f:
    f.truncate(os.path.getsize(data_file) // 2)
  start = time.time()
  again = subprocess.run(_train_command(records, damaged, args.steps),
                         env=ENV, check=True, capture_output=True, text=True)
  again_s = time.time() - start
  lines = [l for l in again.stderr.splitlines() if l.startswith('resume:')]
  difference = _max_difference(f'{clean}/ckpt-{args.steps}',
                               f'{damaged}/ckpt-{args.steps}')
  print(f'  last checkpoint cut to half its bytes, rerun: {again_s:.1f} s; '
        + ' / '.join(lines) + f'; final weights max |difference| '
        f'{difference:.2e}')


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--work_dir', default='/tmp/cvrl_faults')
  parser.add_argument('--videos', type=int, default=72)
  parser.add_argument('--frames', type=int, default=300)
  parser.add_argument('--size', type=int, default=256)
  parser.add_argument('--kill_after', type=float, default=4.0)
  parser.add_argument('--steps', type=int, default=12)
  parser.add_argument('--only', choices=('conversion', 'training'))
  args = parser.parse_args()
  os.makedirs(args.work_dir, exist_ok=True)
  if args.only != 'training':
    conversion(args.work_dir, args)
  if args.only != 'conversion':
    training(args.work_dir, args)


if __name__ == '__main__':
  main()
