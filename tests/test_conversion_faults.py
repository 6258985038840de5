"""Conversion faults of a long job: a worker killed mid-run (the job still
finishes, the victim retried or reported), and reruns that keep what is
done (a shard whose only failure is a missing video is not redone)."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO_ROOT
from tests.conftest import real_video
from tfrecords_tools.conversion import decoder
from tfrecords_tools.conversion import job
from tfrecords_tools.conversion import rerun
from tfrecords_tools.conversion import sources
from tfrecords_tools.conversion import video_frames
from tfrecords_tools.conversion import worker_pool

OPTIONS = video_frames.ConversionOptions(short_side=0)


def _square(x):
  return x * x


def _dies_on_three(x):
  if x == 3:
    os.kill(os.getpid(), signal.SIGKILL)
  return x * x


def _dies_once(args):
  """Kills its process the first time it sees x == 2 (a flag file says)."""
  x, flag = args
  if x == 2 and not os.path.exists(flag):
    open(flag, 'w').close()
    os.kill(os.getpid(), signal.SIGKILL)
  return x * x


@pytest.mark.timeout(180)
def test_results_come_in_order_and_a_dying_input_is_reported():
  died = []

  def on_failure(task, outcome, why):
    died.append((task, outcome, why))
    return -1
  got = list(worker_pool.ordered_results(_dies_on_three, range(12), 2,
                                         on_failure))
  assert got == [0, 1, 4, -1, 16, 25, 36, 49, 64, 81, 100, 121]
  assert len(died) == 1 and died[0][:2] == (3, worker_pool.DIED)
  assert 'killed by SIGKILL' in died[0][2] and 'twice' in died[0][2]
  assert list(worker_pool.ordered_results(_square, range(5), 2,
                                          on_failure)) == [0, 1, 4, 9, 16]


@pytest.mark.timeout(180)
def test_an_input_whose_worker_died_once_is_retried(tmp_path):
  flag = str(tmp_path / 'died')
  got = list(worker_pool.ordered_results(
      _dies_once, [(x, flag) for x in range(8)], 2,
      on_failure=lambda task, outcome, why: pytest.fail(f'{task}: {why}')))
  assert got == [x * x for x in range(8)] and os.path.exists(flag)


# A program that decodes in its own process (swscale's slice threads start
# there) and then converts on a pool: the reproduction. Forked
# workers hung in swscale (PyAV 18.1.1, FFmpeg 8.1.3 on an Intel Xeon).
_DECODE_THEN_CONVERT = """
import sys
from tfrecords_tools.conversion import decoder, job, sources, video_frames

def main(video, out):
  decoder.decode_video(video, decoder.DecodeOptions(short_side=64))
  tasks = [sources.VideoTask(f'v{i}', video, 'a', 'train') for i in range(3)]
  for workers in (1, 2):
    result = job.convert(tasks, f'{out}/{workers}', ['a'],
                         video_frames.ConversionOptions(short_side=64), 1,
                         workers=workers)
    print(workers, result['counts']['ok'], flush=True)

if __name__ == '__main__':
  main(*sys.argv[1:])
"""


@pytest.mark.timeout(300)
def test_a_program_that_decoded_converts_on_workers(tmp_path):
  """Decode in-process, convert in-process, then on two workers: both
  conversions finish (the workers share no FFmpeg or TensorFlow thread
  state with the program) and nothing is printed at interpreter exit."""
  script = tmp_path / 'decode_then_convert.py'
  script.write_text(_DECODE_THEN_CONVERT)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=REPO_ROOT)
  try:
    done = subprocess.run(
        [sys.executable, str(script), real_video('mmaction2_test.mp4'),
         str(tmp_path / 'out')], cwd=REPO_ROOT, env=env, capture_output=True,
        text=True, timeout=240)
  except subprocess.TimeoutExpired as e:
    pytest.fail('converting on workers after decoding in the same process '
                f'hung (printed {e.stdout!r})')
  assert done.returncode == 0, done.stderr[-3000:]
  assert done.stdout.split('\n')[:2] == ['1 3', '2 3'], done.stdout
  assert 'Traceback' not in done.stderr and 'Exception ignored' not in (
      done.stderr), done.stderr[-3000:]


_UNGUARDED = """
import sys
from tfrecords_tools.conversion import job, sources, video_frames
tasks = [sources.VideoTask(f'v{i}', sys.argv[1], 'a', 'train') for i in range(2)]
job.convert(tasks, sys.argv[2], ['a'],
            video_frames.ConversionOptions(short_side=64), 1, workers=2)
"""


@pytest.mark.timeout(300)
def test_a_script_without_a_main_guard_is_told_what_to_do(tmp_path):
  """Spawned workers import the script's main module: without the guard
  each worker would start the conversion again. The job stops (never
  hangs) with a line that names the guard."""
  script = tmp_path / 'unguarded.py'
  script.write_text(_UNGUARDED)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=REPO_ROOT)
  done = subprocess.run(
      [sys.executable, str(script), real_video('mmaction2_test.mp4'),
       str(tmp_path / 'out')], cwd=str(tmp_path), env=env,
      capture_output=True, text=True, timeout=240)
  assert done.returncode != 0
  last = done.stderr.strip().splitlines()[-1]
  assert 'WorkersCannotStart' in last and "if __name__ == '__main__'" in last


_PARENT_STATE = {'set_in_parent': False}


def _sees_parent_state(_):
  return _PARENT_STATE['set_in_parent']


@pytest.mark.timeout(180)
def test_workers_are_not_forks_of_the_parent():
  """What prevents the hang on every machine, whether or not its FFmpeg
  build runs swscale on threads: a worker starts as a new interpreter, so
  state the parent made at run time (here a module global; in the hang,
  swscale's and TensorFlow's thread pools) is not in it."""
  assert worker_pool.START_METHOD in ('spawn', 'forkserver')
  _PARENT_STATE['set_in_parent'] = True
  try:
    pooled = list(worker_pool.ordered_results(
        _sees_parent_state, range(3), 2,
        on_failure=lambda task, outcome, why: pytest.fail(why)))
    alone = worker_pool.run_alone(_sees_parent_state, 0)
  finally:
    _PARENT_STATE['set_in_parent'] = False
  assert pooled == [False] * 3 and alone == (None, False)


def _crash_on_second(task, options):
  """convert_video, except that the second video kills its process (as a
  codec crash or the OOM killer would)."""
  if task.path.endswith('#crash'):
    os.kill(os.getpid(), signal.SIGKILL)
  return video_frames.convert_video(task, options)


@pytest.mark.timeout(300)
def test_a_video_that_kills_its_worker_is_a_manifest_row(synthetic_videos,
                                                         tmp_path):
  tasks = job.read_tasks(os.path.join(synthetic_videos, 'val.csv'),
                         synthetic_videos, 'val')[:5]
  tasks[1] = dataclasses.replace(tasks[1], path=tasks[1].path + '#crash')
  from tfrecords_tools.conversion import shards  # pylint: disable=g-import-not-at-top
  specs = shards.plan_shards(sources.assign_labels(
      tasks, sources.build_label_map(tasks)), 2)
  rows = job.run_plan(specs, str(tmp_path), OPTIONS, 'local', 2,
                      convert_fn=_crash_on_second)
  died = [r for r in rows if r['status'] == decoder.WORKER_DIED]
  assert [r['id'] for r in died] == [tasks[1].clip_id]
  assert 'killed by SIGKILL' in died[0]['error']
  assert sum(r['status'] == decoder.OK for r in rows) == 4


def _open_files(pid):
  try:
    fds = os.listdir(f'/proc/{pid}/fd')
  except OSError:
    return []
  found = []
  for fd in fds:
    try:
      found.append(os.readlink(f'/proc/{pid}/fd/{fd}'))
    except OSError:
      pass
  return found


def _pool_workers(pid):
  """The conversion workers of process `pid`: its spawned children (not
  multiprocessing's resource tracker)."""
  found = []
  for task in os.listdir(f'/proc/{pid}/task'):
    try:
      with open(f'/proc/{pid}/task/{task}/children') as f:
        children = [int(c) for c in f.read().split()]
    except OSError:
      continue
    for child in children:
      try:
        with open(f'/proc/{child}/cmdline', 'rb') as f:
          if b'spawn_main' in f.read():
            found.append(child)
      except OSError:
        pass
  return found


@pytest.mark.skipif(not os.path.exists('/proc/self/task'),
                    reason='reads a process\'s children from /proc')
@pytest.mark.timeout(420)
def test_sigkill_to_a_worker_mid_video_does_not_hang_the_job(tmp_path):
  """The issue's case: a worker SIGKILLed while it converts; the job ends
  in a bounded time with every video converted (the victim's video was
  run again) and no temporary left."""
  root = tmp_path / 'videos'
  root.mkdir()
  names = ['kinetics_arm_wrestling.mp4', 'kinetics_flipping_pancake.mkv',
           'mmaction2_test.mp4']
  rows = []
  for copy in range(4):
    for name in names:
      link = root / f'{copy}_{name}'
      link.symlink_to(real_video(name))
      rows.append(f'{link.name},{name.split(".")[0]}')
  (tmp_path / 'list.csv').write_text('path,label\n' + '\n'.join(rows) + '\n')
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=REPO_ROOT)
  start = time.time()
  proc = subprocess.Popen(
      [sys.executable, '-m', 'tfrecords_tools.convert_videos',
       f'--input_csv={tmp_path / "list.csv"}', f'--video_root={root}',
       f'--output_dir={tmp_path / "out"}', '--workers=2', '--num_shards=4',
       '--fps=25', '--short_side=128'],
      cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True)
  victim = None
  videos = os.path.dirname(real_video(names[0]))
  while time.time() - start < 120 and proc.poll() is None:
    # A worker that has a video open is converting it (a spawned worker
    # spends its first seconds importing).
    converting = [w for w in _pool_workers(proc.pid)
                  if any(p.startswith(videos) for p in _open_files(w))]
    if converting:
      victim = converting[0]
      os.kill(victim, signal.SIGKILL)
      break
    time.sleep(0.02)
  assert victim is not None, 'the job ended before a worker could be killed'
  out, err = proc.communicate(timeout=300)
  took = time.time() - start
  assert proc.returncode == 0, err[-3000:]
  assert took < 300
  assert 'ok=12' in out and 'worker_died=0' in out, out
  assert 'a conversion worker died' in err
  manifest = [json.loads(l) for l in open(tmp_path / 'out' / 'manifest.jsonl')]
  assert len(manifest) == 12
  assert not [p for p in os.listdir(tmp_path / 'out') if '.tmp-' in p]


def _shard_times(out):
  return {p: os.stat(os.path.join(out, p)).st_mtime_ns
          for p in sorted(os.listdir(out)) if p.endswith('.tfrecord')}


def test_a_shard_whose_video_is_missing_is_kept_until_the_video_appears(
    synthetic_videos, tmp_path):
  """Kinetics always misses videos: a rerun after an interruption must not
  convert every shard that has one again. Kept on a plain rerun; converted
  again once the file appears, or on --retry_all_failed; a shard whose
  failure may go another way (a damaged file) on --retry_failed."""
  root = tmp_path / 'videos'
  root.mkdir()
  with open(os.path.join(synthetic_videos, 'train.csv')) as f:
    rows = [line.strip().split(',') for line in f][1:7]
  for path, _ in rows[1:]:
    os.makedirs(root / os.path.dirname(path), exist_ok=True)
    os.symlink(os.path.join(synthetic_videos, path), root / path)
  listing = tmp_path / 'list.csv'
  listing.write_text('path,label\n' + ''.join(f'{p},{l}\n' for p, l in rows))
  out = str(tmp_path / 'out')

  def convert(**kwargs):
    tasks = job.read_tasks(str(listing), str(root), 'train')
    return job.convert(tasks, out, sources.build_label_map(tasks), OPTIONS,
                       3, **kwargs)
  first = convert()
  assert first['counts']['missing'] == 1 and first['counts']['ok'] == 5
  written = _shard_times(out)
  time.sleep(0.01)
  again = convert()
  assert again['counts'] == first['counts']
  assert _shard_times(out) == written  # nothing converted again
  # --retry_failed leaves a file that is still missing (Kinetics's
  # never-downloaded ids would reconvert nearly every shard); asked for
  # all, its shard alone is converted again.
  assert convert(retry_failed=True)['counts'] == first['counts']
  assert _shard_times(out) == written
  retried = convert(retry_failed=rerun.RETRY_ALL)
  assert retried['counts'] == first['counts']
  changed = [p for p, t in _shard_times(out).items() if t != written[p]]
  assert len(changed) == 1  # only the shard with the missing video
  written = _shard_times(out)
  missing = root / rows[0][0]
  os.makedirs(missing.parent, exist_ok=True)
  os.symlink(os.path.join(synthetic_videos, rows[0][0]), missing)
  fixed = convert()
  assert fixed['counts']['ok'] == 6 and fixed['counts']['missing'] == 0
  assert [p for p, t in _shard_times(out).items()
          if t != written[p]] == changed
  # A damaged file's shard: kept on a plain rerun, redone on --retry_failed.
  damaged = tmp_path / 'damaged.csv'
  os.symlink(real_video('corrupted.mp4'), root / 'corrupted.mp4')
  damaged.write_text('path,label\ncorrupted.mp4,x\n')
  corrupt_out = str(tmp_path / 'corrupt_out')

  def convert_damaged(**kwargs):
    tasks = job.read_tasks(str(damaged), str(root), 'train')
    return job.convert(tasks, corrupt_out, ['x'], OPTIONS, 1, **kwargs)
  assert convert_damaged()['counts']['corrupt'] == 1
  before = _shard_times(corrupt_out)
  time.sleep(0.01)
  convert_damaged()
  assert _shard_times(corrupt_out) == before
  convert_damaged(retry_failed=True)
  assert _shard_times(corrupt_out) != before
