"""glibc malloc settings for a host that feeds an accelerator.

The input pipeline allocates a few large buffers a batch (augment_on:
device sends one buffer of tens of MB to a GB a batch). With glibc's
defaults such blocks are fresh mmaps, returned to the kernel when freed, so
every batch pays page faults and the kernel's zeroing of every page again:
on a 2-core host a third of the device-mode host part (docs/benchmarks.md).
The settings below keep freed memory in the process for reuse: no mmap for
allocations, no trimming, and one arena (glibc's other arenas are heaps of
at most 64 MB, and a larger block allocated in one of them is mmapped
whatever M_MMAP_MAX says). The cost: the process keeps its peak heap (the
pipeline's peak is steady), and all threads share one arena's lock (on
hosts with many cores, preloading tcmalloc is the usual alternative;
measure with benchmarks/input_pipeline.py).

glibc reads them from the environment when the process starts, so the
training command re-executes itself once with them set (`maybe_reexec`,
before any work). Where: by default only on hosts of at most AUTO_MAX_CPUS
CPUs. The gain was measured on 2-core hosts only; on a 96-240 vCPU TPU or
GPU host every tf.data thread would share one arena's lock, which nobody
has measured, so there the default is glibc's and `--tune_malloc` opts in
(`--notune_malloc` opts out anywhere). Nothing is changed when the
allocator is not glibc, when another allocator is preloaded (tcmalloc,
jemalloc, mimalloc cache large blocks themselves), or when the user set
glibc's MALLOC_* variables or GLIBC_TUNABLES. Multi-host jobs whose input
runs in remote tf.data servers are not reached by the re-exec at all.
"""

import ctypes
import ctypes.util
import os
import sys
from typing import Mapping, Sequence, Tuple

SETTINGS = {
    'MALLOC_ARENA_MAX': '1',
    'MALLOC_MMAP_MAX_': '0',
    'MALLOC_TRIM_THRESHOLD_': str(2**31 - 1),
    'MALLOC_TOP_PAD_': str(256 << 20),
}
# Set in the re-executed process: says the settings are ours.
MARKER = 'CVRL_MALLOC_TUNED'
_ALLOCATORS = ('tcmalloc', 'jemalloc', 'mimalloc')
# Arguments that run nothing worth a second start.
_NO_RUN = ('--help', '-h', '-?', '--helpshort', '--helpfull', '--helpxml',
           '--list_experiments', '--list_experiments=true')
_OFF = ('--notune_malloc', '--tune_malloc=false', '--tune_malloc=False',
        '--tune_malloc=0')
_ON = ('--tune_malloc', '--tune_malloc=true', '--tune_malloc=True',
       '--tune_malloc=1')
# The largest host the settings are applied on unasked: the hosts they were
# measured on had 2 cores (docs/benchmarks.md); 4 allows a small
# workstation's few input threads, whose contention on one arena is of the
# same order.
AUTO_MAX_CPUS = 4


def glibc_version() -> str:
  """glibc's version, '' when the C library is not glibc (or not Linux)."""
  if sys.platform != 'linux':
    return ''
  try:
    libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
    version = libc.gnu_get_libc_version
  except (OSError, AttributeError):
    return ''
  version.restype = ctypes.c_char_p
  return version().decode()


def decide(environ: Mapping[str, str], argv: Sequence[str],
           glibc: str, cpus: int = 0) -> Tuple[bool, str]:
  """(re-execute with SETTINGS?, the line to log). cpus: this host's
  (os.cpu_count() when 0)."""
  if environ.get(MARKER):
    return False, (f'host malloc: glibc {glibc} tuned for the input '
                   '(one arena, no mmap, no trim; --notune_malloc to leave '
                   'the defaults)')
  if any(arg in _NO_RUN for arg in argv):
    return False, ''  # nothing will run: not worth a second start
  if any(arg in _OFF for arg in argv):
    return False, 'host malloc: defaults (--notune_malloc)'
  asked = any(arg in _ON for arg in argv)
  cpus = cpus or os.cpu_count() or 1
  preload = environ.get('LD_PRELOAD', '')
  if any(name in preload for name in _ALLOCATORS):
    return False, f'host malloc: unchanged (LD_PRELOAD={preload})'
  user = sorted(k for k in environ
                if k.startswith('MALLOC_') or k == 'GLIBC_TUNABLES')
  if user:
    return False, f'host malloc: unchanged (set by {", ".join(user)})'
  if not glibc:
    return False, 'host malloc: unchanged (not glibc)'
  if cpus > AUTO_MAX_CPUS and not asked:
    return False, (f'host malloc: glibc defaults on this {cpus}-CPU host '
                   f'(tuned unasked only up to {AUTO_MAX_CPUS} CPUs, where '
                   'it was measured; --tune_malloc to apply)')
  return True, ''


def maybe_reexec() -> str:
  """Re-executes this process's command line with SETTINGS (does not
  return) when `decide` says so; else returns the line to log."""
  reexec, line = decide(os.environ, sys.argv, glibc_version())
  if not reexec:
    return line
  env = dict(os.environ, **SETTINGS, **{MARKER: '1'})
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, [sys.executable] + sys.orig_argv[1:], env)
  return line  # not reached
