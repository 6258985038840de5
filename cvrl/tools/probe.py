r"""Linear probe of exported features (`cvrl.eval.probe`).

  python -m cvrl.tools.export_features --experiment=cvrl_pretrain_demo \
      --checkpoint=demo_output/pretrain --input_path='demo_output/tfrecords/train/train-*.tfrecord' \
      --output_file=/tmp/train.npz
  (the same for the test records -> /tmp/test.npz; --checkpoint=random_init
  for the random encoder, the baseline)
  python -m cvrl.tools.probe --train=/tmp/train.npz --test=/tmp/test.npz

Standardised features, multinomial logistic regression; the L2 penalty is
chosen on a class-stratified 20% of the training set, then refitted on all of
it; the test set is used once. `--label_key` picks another label array of the
.npz files; `--labels_csv` with `--label_column` takes the labels from a
CSV instead, matched by clip id (e.g. the `shape` column of the factors.csv
that `make_synthetic --kind=nuisance` writes):

  python -m cvrl.tools.probe --train=/tmp/train.npz --test=/tmp/test.npz \
      --labels_csv=/tmp/nuisance/factors.csv --label_column=shape
"""

import sys

from absl import app
from absl import flags

from cvrl import files
from cvrl.eval import probe
from cvrl.tools import cli

_TRAIN = flags.DEFINE_string('train', None, '.npz of the training videos.')
_TEST = flags.DEFINE_string('test', None, '.npz of the test videos.')
_LABEL_KEY = flags.DEFINE_string('label_key', 'labels',
                                 'Label array in the .npz files.')
_LABELS_CSV = flags.DEFINE_string(
    'labels_csv', None, 'CSV with the labels by clip id (column --id_column).')
_LABEL_COLUMN = flags.DEFINE_string('label_column', None,
                                    'Column of --labels_csv to probe.')
_ID_COLUMN = flags.DEFINE_string('id_column', 'path',
                                 'Column of --labels_csv holding clip ids.')
_HOLDOUT = flags.DEFINE_float('holdout', 0.2,
                              'Share of train that chooses the penalty.')


def _load(path: str, csv_labels=None):
  data = files.load_npz(path)  # local or gs://
  if csv_labels is not None:
    if 'ids' not in data:
      raise ValueError(f'{path}: no clip ids to match --labels_csv')
    return data['features'], probe.labels_for_ids(
        [str(i) for i in data['ids']], csv_labels,
        f'{path} with {_LABELS_CSV.value}')
  if _LABEL_KEY.value not in data:
    raise ValueError(f'{path}: no array {_LABEL_KEY.value!r} (has '
                     f'{sorted(data)})')
  return data['features'], data[_LABEL_KEY.value]


def main(argv):
  del argv
  if not _TRAIN.value or not _TEST.value:
    raise app.UsageError('--train and --test are required')
  if bool(_LABELS_CSV.value) != bool(_LABEL_COLUMN.value):
    raise app.UsageError('--labels_csv and --label_column go together')
  try:
    csv_labels = None
    if _LABELS_CSV.value:
      csv_labels, _ = probe.read_factor_labels(
          _LABELS_CSV.value, _LABEL_COLUMN.value, _ID_COLUMN.value)
    train_x, train_y = _load(_TRAIN.value, csv_labels)
    test_x, test_y = _load(_TEST.value, csv_labels)
    result = probe.linear_probe(train_x, train_y, test_x, test_y,
                                holdout=_HOLDOUT.value)
  except (OSError, ValueError) as e:
    print(f'probe: error: {e}', file=sys.stderr)
    return 1
  chance = 1.0 / result.num_classes
  print(f'linear probe ({result.num_classes} classes, chance '
        f'{100 * chance:.2f}): test top-1 {100 * result.test_top1:.2f}, train '
        f'{100 * result.train_top1:.2f}, l2 {result.l2:g} (held-out top-1 '
        + ', '.join(f'{l2:g}: {100 * v:.1f}'
                    for l2, v in result.validation_top1.items()) + ')')
  return 0


def run_main():
  cli.run(main)


if __name__ == '__main__':
  run_main()
