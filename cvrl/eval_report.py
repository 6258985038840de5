r"""Tables of evaluation results, read from the runs' TensorBoard events.

Per-split results and their mean (UCF-101 / HMDB-51 report 3 splits):
  python -m cvrl.eval_report --runs=split1=DIR1,split2=DIR2,split3=DIR3

A comparison with the margin of the first run over the others (the demo's
CVRL vs random encoder):
  python -m cvrl.eval_report --runs=CVRL=DIR_A,random=DIR_B --margin

Each run's value is the last evaluation's `top_1_accuracy` (and
`top_5_accuracy`) in DIR/validation.
"""

import os
import sys
from typing import Dict, List, Sequence, Tuple

from absl import app
from absl import flags

from cvrl import run_summary

_RUNS = flags.DEFINE_list('runs', None, 'name=model_dir pairs.')
_MARGIN = flags.DEFINE_bool('margin', False,
                            "Also print the first run's margin over each other.")

METRICS = ('top_1_accuracy', 'top_5_accuracy')


def final_metrics(model_dir: str) -> Dict[str, Tuple[int, float]]:
  """{metric: (step, value)} of the last evaluation of a run."""
  scalars = run_summary.read_scalars(os.path.join(model_dir, 'validation'))
  out = {}
  for metric in METRICS:
    if scalars.get(metric):
      step = max(scalars[metric])
      out[metric] = (step, scalars[metric][step])
  if not out:
    raise ValueError(f'{model_dir}/validation: no {METRICS[0]} logged; did '
                     'the run evaluate (--mode=train_and_eval or eval)?')
  return out


def table(runs: Sequence[Tuple[str, str]], margin: bool = False) -> str:
  """Rows of top-1 / top-5 (in %) per run, then the mean or the margins."""
  results = [(name, final_metrics(path)) for name, path in runs]
  width = max(8, max(len(name) for name, _ in results))
  lines = [f'{"run":{width}s}  {"top-1":>7s}  {"top-5":>7s}  step']
  values: List[float] = []
  for name, metrics in results:
    top1 = metrics.get('top_1_accuracy', (0, float('nan')))
    top5 = metrics.get('top_5_accuracy', (0, float('nan')))
    values.append(top1[1])
    lines.append(f'{name:{width}s}  {100 * top1[1]:7.2f}  '
                 f'{100 * top5[1]:7.2f}  {top1[0]}')
  if margin:
    for (name, _), value in zip(results[1:], values[1:]):
      lines.append(f'{results[0][0]} - {name}: '
                   f'{100 * (values[0] - value):+.2f} points top-1')
  elif len(results) > 1:
    lines.append(f'{"mean":{width}s}  {100 * sum(values) / len(values):7.2f}')
  return '\n'.join(lines)


def parse_runs(items: Sequence[str]) -> List[Tuple[str, str]]:
  runs = []
  for item in items:
    name, sep, path = item.partition('=')
    if not sep or not name or not path:
      raise app.UsageError(f'--runs item {item!r}: expected name=model_dir')
    runs.append((name, path))
  return runs


def main(argv):
  del argv
  if not _RUNS.value:
    raise app.UsageError('--runs is required')
  try:
    print(table(parse_runs(_RUNS.value), _MARGIN.value))
  except ValueError as e:
    print(f'eval_report: error: {e}', file=sys.stderr)
    return 1
  return 0


if __name__ == '__main__':
  app.run(main)
