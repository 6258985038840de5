r"""What a progress report costs and writes: tqdm against cvrl.progress's log
lines, for a job that is not on a terminal (CI, nohup, Dataflow workers).

  python benchmarks/progress_output.py [--items=10000] [--hours=1]

Simulates a job of --items items spread evenly over --hours (a clock that
advances per item, so no waiting) writing to a non-terminal stream, and
prints, for tqdm at its default redraw interval (0.1 s), tqdm at 30 s, and
cvrl.progress (a log line every 30 s): the bytes written, the newlines in
them (what a log viewer shows as lines) and the CPU cost per update.
"""

import argparse
import io
import os
import sys
import time
from unittest import mock

import tqdm

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

# pylint: disable=g-import-not-at-top,wrong-import-position
from cvrl import progress


class Clock:

  def __init__(self):
    self.now = 1000.0

  def __call__(self):
    return self.now


def run_tqdm(items, step_s, mininterval):
  clock, out = Clock(), io.StringIO()
  bar = tqdm.tqdm(total=items, file=out, unit='videos',
                  mininterval=mininterval)
  bar._time = clock  # pylint: disable=protected-access
  bar.start_t = bar.last_print_t = clock()
  start = time.process_time()
  for _ in range(items):
    clock.now += step_s
    bar.update(1)
  bar.close()
  return out.getvalue(), time.process_time() - start


def run_ours(items, step_s):
  clock, lines = Clock(), []
  with mock.patch.object(progress.logging, 'info',
                         lambda fmt, *a: lines.append(fmt % a + '\n')):
    bar = progress.Progress(items, stream=io.StringIO(), clock=clock)
    start = time.process_time()
    for _ in range(items):
      clock.now += step_s
      bar.update(1)
    spent = time.process_time() - start
  return ''.join(lines), spent


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--items', type=int, default=10000)
  parser.add_argument('--hours', type=float, default=1.0)
  args = parser.parse_args()
  step = args.hours * 3600 / args.items
  rows = [('tqdm, default (0.1 s)', *run_tqdm(args.items, step, 0.1)),
          ('tqdm, mininterval 30 s', *run_tqdm(args.items, step, 30.0)),
          ('cvrl.progress (log line / 30 s)', *run_ours(args.items, step))]
  print(f'{args.items} items over {args.hours:g} h, not on a terminal')
  print(f"{'reporter':34s} {'bytes':>9s} {'newlines':>9s} {'us/update':>10s}")
  for name, text, spent in rows:
    print(f"{name:34s} {len(text):9d} {text.count(chr(10)):9d} "
          f"{spent / args.items * 1e6:10.2f}")
  return 0


if __name__ == '__main__':
  sys.exit(main())
