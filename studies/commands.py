"""What the studies share: running one of the project's commands."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_module(args, log: str) -> None:
  """`python -m args...` from the repository root, its output to `log`;
  on failure a RuntimeError with the log's tail."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=REPO)
  with open(log, 'w') as f:
    done = subprocess.run([sys.executable, '-m', *args], cwd=REPO, env=env,
                          stdout=f, stderr=subprocess.STDOUT, check=False)
  if done.returncode:
    with open(log) as f:
      tail = f.read()[-3000:]
    raise RuntimeError(f'{args[0]} failed ({log}):\n{tail}')
