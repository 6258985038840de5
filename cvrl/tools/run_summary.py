r"""Prints how a pretraining run's metrics moved, from its TensorBoard events.

  python -m cvrl.tools.run_summary --model_dir=demo_output/pretrain

For the training and validation logs: contrastive loss and accuracy at the
first and last logged steps, beside their chance values for the run's batch
(ln(2N - 1), twice that with the release's 'sum_of_directions' loss, and
1 / (2N - 1)), so one can see whether anything was learned.
"""

import sys

from absl import app
from absl import flags

from cvrl.eval import reports
from cvrl.tools import cli

_MODEL_DIR = flags.DEFINE_string('model_dir', None, 'The run to summarise.')

def main(argv):
  del argv
  if not _MODEL_DIR.value:
    raise app.UsageError('--model_dir is required')
  text = reports.summarize(_MODEL_DIR.value)
  if not text:
    print(f'run_summary: no contrastive metrics under {_MODEL_DIR.value}',
          file=sys.stderr)
    return 1
  print(text)
  return 0


def run_main():
  cli.run(main)


if __name__ == '__main__':
  run_main()
