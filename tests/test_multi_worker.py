"""A MultiWorkerMirrored job restarts from its checkpoint: two workers on
localhost CPUs (TF_CONFIG), as a multi-worker GPU job runs. Before, every
restart stopped with 'Collective ops must be configured at program startup'
(the resume check started TensorFlow's runtime before the strategy), and
then a non-chief worker started from scratch while the chief resumed."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO_ROOT
from tests.test_train_driver import _assert_same_weights
from tests.test_train_driver import _command


def _free_ports(n):
  sockets = [socket.socket() for _ in range(n)]
  for s in sockets:
    s.bind(('localhost', 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def _two_workers(records, model_dir, steps, kill_after=None):
  """Runs both workers of a 2-worker job (`steps` steps, a checkpoint each
  step) to the end, or SIGKILLs both once checkpoint `kill_after` exists
  (a VM preempted without notice, the job's other VM taken down with it);
  returns their (returncode, stderr)."""
  ports = _free_ports(2)
  cluster = {'worker': [f'localhost:{p}' for p in ports]}
  command = _command(records, model_dir, steps,
                     'runtime.distribution_strategy=multi_worker_mirrored,'
                     'trainer.checkpoint_interval=1')
  procs, logs = [], []
  for index in range(2):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=REPO_ROOT,
               TF_CONFIG=json.dumps({'cluster': cluster, 'task': {
                   'type': 'worker', 'index': index}}))
    # Files, not pipes: a worker blocked on a full pipe would stall the
    # other in their next collective.
    logs.append(open(f'{model_dir}.worker{index}.log', 'w+'))
    procs.append(subprocess.Popen(command, cwd=REPO_ROOT, env=env,
                                  stdout=subprocess.DEVNULL,
                                  stderr=logs[-1], text=True))
  results = []
  try:
    if kill_after is not None:
      state = model_dir / 'checkpoint'
      deadline = time.time() + 400
      while time.time() < deadline and all(p.poll() is None for p in procs):
        if state.exists() and f'ckpt-{kill_after}"' in state.read_text():
          break
        time.sleep(0.01)
      for proc in procs:
        proc.send_signal(signal.SIGKILL)
    for proc, log in zip(procs, logs):
      proc.wait(timeout=400)
      log.seek(0)
      results.append((proc.returncode, log.read()))
  finally:
    for proc, log in zip(procs, logs):
      if proc.poll() is None:
        proc.kill()
        proc.wait()
      log.close()
  return results


_NO_RUNTIME = r'''
import sys
from tensorflow.python.eager import context
from cvrl.tasks import resume
prefix, step, _ = resume.select(sys.argv[1])
print(step, context.context()._context_handle is None)
'''


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_two_worker_job_resumes_as_if_uninterrupted(synthetic_records,
                                                      tmp_path):
  clean = tmp_path / 'clean'
  for code, err in _two_workers(synthetic_records, clean, 4):
    assert code == 0, err[-3000:]
  resumed = tmp_path / 'resumed'
  killed = _two_workers(synthetic_records, resumed, 4, kill_after=2)
  assert [code for code, _ in killed] == [-signal.SIGKILL] * 2, killed
  saved = int(re.search(r'model_checkpoint_path: "ckpt-(\d+)"',
                        (resumed / 'checkpoint').read_text()).group(1))
  assert 2 <= saved < 4
  # Reading the model dir's checkpoints starts no TensorFlow runtime.
  check = subprocess.run(
      [sys.executable, '-c', _NO_RUNTIME, str(resumed)], cwd=REPO_ROOT,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=REPO_ROOT),
      capture_output=True, text=True, timeout=120, check=True)
  assert check.stdout.split() == [str(saved), 'True']
  for code, err in _two_workers(synthetic_records, resumed, 4):
    assert code == 0, err[-3000:]
    assert f'resuming at step {saved}' in err
  _assert_same_weights(f'{clean}/ckpt-4', f'{resumed}/ckpt-4')
