"""The training command's glibc malloc settings (cvrl.data.host_malloc):
when they apply, that the command re-executes itself once with them, and
that they do what they are for: a large freed block is reused without the
kernel faulting its pages in again."""

import os
import subprocess
import sys

import pytest

from cvrl.data import host_malloc
from tests.conftest import REPO_ROOT

GLIBC = host_malloc.glibc_version()
needs_glibc = pytest.mark.skipif(not GLIBC, reason='glibc only')


def _clean_env(**extra):
  env = {k: v for k, v in os.environ.items()
         if not k.startswith('MALLOC_') and k not in (
             'GLIBC_TUNABLES', 'LD_PRELOAD', host_malloc.MARKER)}
  return dict(env, TF_CPP_MIN_LOG_LEVEL='3', **extra)


def test_when_the_settings_apply():
  argv = ['train.py', '--experiment=x']
  assert host_malloc.decide({}, argv, '2.36', cpus=2) == (True, '')
  # Unmeasured on big hosts: glibc's defaults unless asked for.
  reexec, line = host_malloc.decide({}, argv, '2.36', cpus=96)
  assert not reexec and 'glibc defaults on this 96-CPU host' in line
  assert '--tune_malloc to apply' in line
  assert host_malloc.decide({}, argv + ['--tune_malloc'], '2.36',
                            cpus=96) == (True, '')
  assert host_malloc.decide({}, argv + ['--list_experiments'], '2.36',
                            cpus=2) == (False, '')
  reexec, line = host_malloc.decide({host_malloc.MARKER: '1'}, argv, '2.36')
  assert not reexec and 'glibc 2.36 tuned' in line  # the re-executed run
  assert host_malloc.decide({}, argv + ['--help'], '2.36') == (False, '')
  for environ, args, glibc, says in (
      ({}, argv + ['--notune_malloc'], '2.36', '--notune_malloc'),
      ({}, argv + ['--tune_malloc=false'], '2.36', '--notune_malloc'),
      ({'LD_PRELOAD': '/usr/lib/libtcmalloc.so.4'}, argv, '2.36',
       'LD_PRELOAD=/usr/lib/libtcmalloc.so.4'),
      ({'MALLOC_ARENA_MAX': '4'}, argv, '2.36', 'set by MALLOC_ARENA_MAX'),
      ({'GLIBC_TUNABLES': 'glibc.malloc.x=1'}, argv, '2.36', 'GLIBC_TUNABLES'),
      ({}, argv, '', 'not glibc')):
    reexec, line = host_malloc.decide(environ, args, glibc, cpus=2)
    assert not reexec and says in line, (environ, args, line)


_PROBE = r'''
import os, resource, sys
from cvrl.data import host_malloc
print(host_malloc.maybe_reexec())
import numpy as np
size = 256 << 20
faults = []
for _ in range(3):
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  block = np.empty(size, np.uint8)
  block[::4096] = 1  # touch every page
  faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
  del block
print('ARENA', os.environ.get('MALLOC_ARENA_MAX'), 'FAULTS', *faults)
'''


def _probe(*args, **env):
  result = subprocess.run([sys.executable, '-c', _PROBE, *args],
                          cwd=REPO_ROOT, env=_clean_env(**env),
                          capture_output=True, text=True, timeout=120,
                          check=True)
  lines = result.stdout.splitlines()
  faults = [int(x) for x in lines[-1].split('FAULTS')[1].split()]
  return lines, faults


@needs_glibc
def test_the_process_reexecutes_once_and_reuses_freed_blocks():
  lines, faults = _probe('--tune_malloc')  # whatever this host's CPUs
  # One re-execution: the child says it is tuned, and it did not loop.
  assert len(lines) == 2 and 'tuned' in lines[0], lines
  assert lines[1].startswith('ARENA 1 ')
  # The first block is faulted in (in 4 KB or, with transparent huge pages,
  # 2 MB pages); the next ones reuse its pages.
  assert faults[0] >= (256 << 20) // (2 << 20)
  assert max(faults[1:]) <= faults[0] // 20, faults
  # With glibc's defaults every block is a fresh mmap, faulted in again.
  lines, faults = _probe('--notune_malloc')
  assert 'defaults' in lines[0] and lines[1].startswith('ARENA None ')
  assert min(faults) >= (256 << 20) // (2 << 20), faults
  assert min(faults[1:]) >= faults[0] // 2, faults


@needs_glibc
def test_the_training_command_says_what_it_did():
  """The command re-executes itself and logs it (--notune_malloc: the
  `decide` cases above; the probe above runs that path end to end)."""
  result = subprocess.run(
      [sys.executable, '-m', 'cvrl.tools.train', '--experiment=no_such_one',
       '--mode=train', '--model_dir=/tmp/unused', '--tune_malloc'],
      cwd=REPO_ROOT, env=_clean_env(), capture_output=True, text=True,
      timeout=300, check=False)
  assert 'host malloc: glibc' in result.stderr
  assert 'tuned for the input' in result.stderr
  assert "--experiment='no_such_one' is not a registered" in result.stderr
  # A listing prints the list, and nothing about malloc: no re-execution.
  listed = subprocess.run(
      [sys.executable, '-m', 'cvrl.tools.train', '--list_experiments'],
      cwd=REPO_ROOT, env=_clean_env(), capture_output=True, text=True,
      timeout=300, check=True)
  assert 'host malloc' not in listed.stderr
  assert listed.stdout.splitlines()[0].startswith('cvrl_')
  assert 'cvrl_pretrain_k600 ' in listed.stdout
