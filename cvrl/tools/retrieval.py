r"""Video retrieval: test videos query the training videos.

  python -m cvrl.tools.retrieval --train=train_features.npz \
      --test=val_features.npz [--name=CVRL]

Feature files are `cvrl.tools.export_features`'s (features averaged over
each video's views, labels); prints R@1, R@5, R@10, R@20 in %.
"""

import sys

from absl import app
from absl import flags

from cvrl import files
from cvrl.eval import retrieval
from cvrl.tools import cli

_TRAIN = flags.DEFINE_string('train', None, '.npz of the gallery (train).')
_TEST = flags.DEFINE_string('test', None, '.npz of the queries (test).')
_NAME = flags.DEFINE_string('name', 'features', 'Row name to print.')
_KS = flags.DEFINE_list('k', [str(k) for k in retrieval.KS],
                        'The k of R@k.')


def main(argv):
  del argv
  if not _TRAIN.value or not _TEST.value:
    raise app.UsageError('--train and --test are required')
  try:
    gallery, query = files.load_npz(_TRAIN.value), files.load_npz(_TEST.value)
    for path, data in ((_TRAIN.value, gallery), (_TEST.value, query)):
      if data['features'].ndim != 2:
        raise ValueError(f'{path}: features {data["features"].shape}; '
                         'export them with --average_views')
    recalls = retrieval.recall_at_k(
        query['features'], query['labels'], gallery['features'],
        gallery['labels'], [int(k) for k in _KS.value])
  except (ValueError, KeyError) + files.FILE_ERRORS as e:
    print(f'retrieval: error: {e}', file=sys.stderr)
    return 1
  print(retrieval.format_recalls(_NAME.value, recalls))
  return 0


def run_main():
  cli.run(main)


if __name__ == '__main__':
  run_main()
