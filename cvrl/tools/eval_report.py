r"""Tables of evaluation results, read from the runs' TensorBoard events.

Per-split results and their mean (UCF-101 / HMDB-51 report 3 splits):
  python -m cvrl.tools.eval_report --runs=split1=DIR1,split2=DIR2,split3=DIR3

A comparison with the margin of the first run over the others (the demo's
CVRL vs random encoder):
  python -m cvrl.tools.eval_report --runs=CVRL=DIR_A,random=DIR_B --margin

Each run's value is the last evaluation's `top_1_accuracy` (and
`top_5_accuracy`) in DIR/validation; with --detection, AVA detection runs'
frame mAP@0.5 and per-class AP:
  python -m cvrl.tools.eval_report --detection --runs=CVRL=DIR_A,random=DIR_B --margin
"""

import sys

from absl import app
from absl import flags

from cvrl.eval import reports
from cvrl.tools import cli

_RUNS = flags.DEFINE_list('runs', None, 'name=model_dir pairs.')
_DETECTION = flags.DEFINE_bool(
    'detection', False, 'Detection runs: mAP and per-class AP.')
_MARGIN = flags.DEFINE_bool('margin', False,
                            "Also print the first run's margin over each other.")

def main(argv):
  del argv
  if not _RUNS.value:
    raise app.UsageError('--runs is required')
  try:
    runs = reports.parse_runs(_RUNS.value)
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  try:
    make = reports.detection_table if _DETECTION.value else reports.table
    print(make(runs, _MARGIN.value))
  except ValueError as e:
    print(f'eval_report: error: {e}', file=sys.stderr)
    return 1
  return 0


def run_main():
  cli.run(main)


if __name__ == '__main__':
  run_main()
