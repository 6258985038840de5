"""eval_report: per-split tables and means from real event files."""

import pytest
import tensorflow as tf

from cvrl.eval import reports


def _run(tmp_path, name, top1_by_step, top5=0.9):
  folder = tmp_path / name
  writer = tf.summary.create_file_writer(str(folder / 'validation'))
  with writer.as_default():
    for step, value in top1_by_step.items():
      tf.summary.scalar('top_1_accuracy', value, step=step)
      tf.summary.scalar('top_5_accuracy', top5, step=step)
  writer.close()
  return str(folder)


def test_three_splits_and_their_mean(tmp_path):
  runs = [(f'split{i}', _run(tmp_path, f's{i}', {10: 0.1, 50: v}))
          for i, v in ((1, 0.80), (2, 0.70), (3, 0.75))]
  text = reports.table(runs)
  lines = text.splitlines()
  assert lines[1].split() == ['split1', '80.00', '90.00', '50']
  assert lines[-1].split() == ['mean', '75.00']


def test_margin_of_the_first_run(tmp_path):
  runs = [('CVRL', _run(tmp_path, 'a', {5: 0.625})),
          ('random', _run(tmp_path, 'b', {5: 0.25}))]
  assert 'CVRL - random: +37.50 points top-1' in reports.table(
      runs, margin=True)


def test_a_run_without_evaluation_is_named(tmp_path):
  (tmp_path / 'empty' / 'validation').mkdir(parents=True)
  with pytest.raises(ValueError, match='empty/validation: no top_1_accuracy'):
    reports.table([('x', str(tmp_path / 'empty'))])
