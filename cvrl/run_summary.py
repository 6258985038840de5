r"""Prints how a pretraining run's metrics moved, from its TensorBoard events.

  python -m cvrl.run_summary --model_dir=demo_output/pretrain

For the training and validation logs: contrastive loss and accuracy at the
first and last logged steps, beside their chance values for the run's batch
(ln(2N - 1), twice that with the release's 'sum_of_directions' loss, and
1 / (2N - 1)), so one can see whether anything was learned.
"""

import glob
import math
import os
import sys
from typing import Dict

from absl import app
from absl import flags
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from official.modeling.hyperparams import params_dict

_MODEL_DIR = flags.DEFINE_string('model_dir', None, 'The run to summarise.')

TAGS = ('contrastive_loss', 'contrastive_accuracy')


def read_scalars(log_dir: str) -> Dict[str, Dict[int, float]]:
  """{tag: {step: value}} of a log folder; later writes of a step win."""
  values: Dict[str, Dict[int, float]] = {}
  for path in sorted(glob.glob(os.path.join(log_dir, 'events.*')),
                     key=os.path.getmtime):
    acc = event_accumulator.EventAccumulator(
        path, size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    for tag in acc.Tags()['tensors']:
      for event in sorted(acc.Tensors(tag), key=lambda e: e.wall_time):
        array = tf.make_ndarray(event.tensor_proto)
        if array.dtype != object and array.size == 1:
          values.setdefault(tag, {})[event.step] = float(array)
  return values


def summarize(model_dir: str) -> str:
  params = params_dict.read_yaml_to_params_dict(
      os.path.join(model_dir, 'params.yaml')).as_dict()
  lines = []
  reduction = params['task'].get('losses', {}).get('reduction', 'mean')
  directions = 2 if reduction == 'sum_of_directions' else 1
  for split, key in (('train', 'train_data'), ('validation',
                                               'validation_data')):
    batch = params['task'][key]['global_batch_size']
    candidates = 2 * batch - 1
    scalars = read_scalars(os.path.join(model_dir, split))
    if not all(tag in scalars for tag in TAGS):
      continue
    lines.append(f'{split} (batch {batch}: chance loss '
                 f'{directions * math.log(candidates):.3f}, chance accuracy '
                 f'{1 / candidates:.3f})')
    for tag in TAGS:
      steps = sorted(scalars[tag])
      first, last = steps[0], steps[-1]
      lines.append(f'  {tag:22s} step {first:5d}: {scalars[tag][first]:.3f}'
                   f'   step {last:5d}: {scalars[tag][last]:.3f}')
  return '\n'.join(lines)


def main(argv):
  del argv
  if not _MODEL_DIR.value:
    raise app.UsageError('--model_dir is required')
  text = summarize(_MODEL_DIR.value)
  if not text:
    print(f'run_summary: no contrastive metrics under {_MODEL_DIR.value}',
          file=sys.stderr)
    return 1
  print(text)
  return 0


if __name__ == '__main__':
  app.run(main)
