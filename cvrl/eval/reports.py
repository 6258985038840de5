"""Reports read from a run's TensorBoard events: how pretraining moved
against chance, and tables of evaluation results (with a mean, or margins).

Libraries of `cvrl.tools.run_summary` and `cvrl.tools.eval_report`; the demo
and the tests call them too.
"""

import math
import os
from typing import Dict, List, Sequence, Tuple

import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from official.modeling.hyperparams import params_dict

TAGS = ('contrastive_loss', 'contrastive_accuracy')


def read_scalars(log_dir: str) -> Dict[str, Dict[int, float]]:
  """{tag: {step: value}} of a log folder; later writes of a step win."""
  values: Dict[str, Dict[int, float]] = {}
  paths = tf.io.gfile.glob(os.path.join(log_dir, 'events.*'))
  # Oldest first (later writes of a step win), on any file system.
  for path in sorted(paths, key=lambda p: tf.io.gfile.stat(p).mtime_nsec):
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
      line = (f'  {tag:22s} step {first:5d}: {scalars[tag][first]:.3f}'
              f'   step {last:5d}: {scalars[tag][last]:.3f}')
      if tag == 'contrastive_accuracy':
        # The number that tells a seed that learned from one that did not
        # (docs/learning_under_nuisance.md): near 1x, nothing was learned.
        line += f' ({scalars[tag][last] * candidates:.1f}x chance)'
      lines.append(line)
  return '\n'.join(lines)


METRICS = ('top_1_accuracy', 'top_5_accuracy')


def final_metrics(model_dir: str) -> Dict[str, Tuple[int, float]]:
  """{metric: (step, value)} of the last evaluation of a run."""
  scalars = read_scalars(os.path.join(model_dir, 'validation'))
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


def detection_table(runs: Sequence[Tuple[str, str]],
                    margin: bool = False) -> str:
  """Frame mAP@0.5 (in %) and per-class AP of each detection run's last
  evaluation, then the first run's margin over the others."""
  results = []
  for name, path in runs:
    scalars = read_scalars(os.path.join(path, 'validation'))
    if not scalars.get('mAP'):
      raise ValueError(f'{path}/validation: no mAP logged; did the detection '
                       'run evaluate (--mode=train_and_eval or eval)?')
    step = max(scalars['mAP'])
    per_class = {k[3:]: v[step] for k, v in sorted(scalars.items())
                 if k.startswith('AP/') and step in v}
    results.append((name, step, scalars['mAP'][step], per_class))
  classes = sorted({c for r in results for c in r[3]})
  width = max(8, max(len(name) for name, *_ in results))
  lines = [f'{"run":{width}s}  {"mAP":>6s}  ' +
           '  '.join(f'{c[:12]:>12s}' for c in classes) + '  step']
  for name, step, value, per_class in results:
    cells = '  '.join(f'{100 * per_class.get(c, float("nan")):12.2f}'
                      for c in classes)
    lines.append(f'{name:{width}s}  {100 * value:6.2f}  {cells}  {step}')
  if margin:
    for name, _, value, _ in results[1:]:
      lines.append(f'{results[0][0]} - {name}: '
                   f'{100 * (results[0][2] - value):+.2f} points mAP')
  return '\n'.join(lines)


def parse_runs(items: Sequence[str]) -> List[Tuple[str, str]]:
  runs = []
  for item in items:
    name, sep, path = item.partition('=')
    if not sep or not name or not path:
      raise ValueError(f'--runs item {item!r}: expected name=model_dir')
    runs.append((name, path))
  return runs
