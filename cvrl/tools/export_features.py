r"""Exports backbone features of video TFRecords to an .npz file.

  python -m cvrl.tools.export_features --experiment=cvrl_linear_eval_k400 \
      --checkpoint=gs://BUCKET/cvrl/pretrain_k400 \
      --input_path='/data/k400/tfrecords/val-*.tfrecord' --output_file=features.npz \
      --num_clips=10 --num_crops=3 --average_views

Several splits with one backbone, built and restored once (`{split}` in
both paths is replaced by each name of --splits):

  python -m cvrl.tools.export_features --experiment=cvrl_linear_eval_k400 \
      --checkpoint=gs://BUCKET/cvrl/pretrain_k400 --splits=train,val \
      --input_path='/data/k400/tfrecords/{split}-*.tfrecord' \
      --output_file='features/{split}.npz'

The experiment (plus --config_file / --params_override, strictly applied)
says which backbone and which clip length, stride and sizes; the checkpoint
(a folder or a prefix: pretraining, classification or inflation runs) must
hold exactly that backbone, else the error names the first variable that
differs; --checkpoint=random_init exports the randomly initialised backbone
(the baseline to probe against). Output keys: features [N, D] (or [N, V, D] with
--noaverage_views), labels [N], ids [N].
"""

import sys

from absl import app
from absl import flags

from official.common import flags as tfm_flags

from cvrl import files
from cvrl.data import ava_files
from cvrl.eval import feature_export
from cvrl.eval import projector
from cvrl import registry_imports  # noqa: F401  pylint: disable=unused-import
from cvrl.configs import launch
from cvrl.modeling import checkpoint_restore
from cvrl.tools import cli

_CHECKPOINT = flags.DEFINE_string(
    'checkpoint', None, "Checkpoint prefix or folder; 'random_init': the "
    'backbone at its random initialisation (task.init_seed), the baseline.')
_INPUT_PATH = flags.DEFINE_string(
    'input_path', None, 'TFRecords: comma-separated globs (local or gs://).')
_OUTPUT_FILE = flags.DEFINE_string('output_file', None, 'The .npz to write.')
cli.deprecated_alias('pattern', 'input_path')
cli.deprecated_alias('output', 'output_file')
_SPLITS = flags.DEFINE_list(
    'splits', [], 'Export each of these splits with the same backbone: '
    '{split} in --input_path and --output_file stands for the name.')
_NUM_CLIPS = flags.DEFINE_integer('num_clips', 1,
                                  'Evenly spaced clips per video.')
_NUM_CROPS = flags.DEFINE_integer('num_crops', 1, 'Crops per clip: 1 or 3.')
_AVERAGE = flags.DEFINE_bool('average_views', True,
                             'Average the views of a video into one feature.')
_BATCH = flags.DEFINE_integer('batch_size', 8, 'Videos per batch.')
_PROJECTOR_DIR = flags.DEFINE_string(
    'projector_dir', None, 'Also write the features for TensorBoard\'s '
    'embedding projector here (tensorboard --logdir=DIR, tab PROJECTOR); '
    'with --splits, those of --projector_split.')
_PROJECTOR_SPLIT = flags.DEFINE_string(
    'projector_split', None, 'With --splits and --projector_dir: the split '
    'the projector shows (default: the last of --splits).')
_LABEL_MAP = flags.DEFINE_string(
    'label_map', None, 'Class names for the projector: label_map.txt of the '
    'records or a .pbtxt (default: the label indices).')
_VIEW_SIZE = flags.DEFINE_integer(
    'view_size', 0, 'Short side of the views, cropped square (0: the size '
    'the experiment evaluates at: its test short side, or for a pretraining '
    'experiment its crop size).')


def _jobs():
  """[(input_path, output_file)]: one, or one a split of --splits."""
  if not _SPLITS.value:
    if _PROJECTOR_SPLIT.value:
      raise app.UsageError('--projector_split names one of --splits; no '
                           '--splits given')
    return [(_INPUT_PATH.value, _OUTPUT_FILE.value)]
  for name in ('input_path', 'output_file'):
    if '{split}' not in getattr(flags.FLAGS, name):
      raise app.UsageError(f'--splits: --{name} must contain {{split}} (got '
                           f'{getattr(flags.FLAGS, name)!r})')
  if len(set(_SPLITS.value)) != len(_SPLITS.value):
    raise app.UsageError(f'--splits: a split is named twice in {_SPLITS.value}')
  return [(_INPUT_PATH.value.replace('{split}', split),
           _OUTPUT_FILE.value.replace('{split}', split))
          for split in _SPLITS.value]


def _projector_output(jobs) -> str:
  """The .npz of the split the projector shows."""
  if not _SPLITS.value:
    return jobs[0][1]
  split = _PROJECTOR_SPLIT.value or _SPLITS.value[-1]
  if split not in _SPLITS.value:
    raise app.UsageError(f'--projector_split={split!r} is not one of '
                         f'--splits={",".join(_SPLITS.value)}')
  return jobs[_SPLITS.value.index(split)][1]


def _write_projector(npz: str) -> None:
  arrays = files.load_npz(npz)
  names = None
  if _LABEL_MAP.value:
    names = ava_files.read_class_names(_LABEL_MAP.value)
  features = arrays['features']
  if features.ndim == 3:  # --noaverage_views: one point per video
    features = features.mean(axis=1)
  config = projector.write(_PROJECTOR_DIR.value, features,
                           arrays['labels'], arrays['ids'], names)
  print(f'export_features: projector: {config} (tensorboard '
        f'--logdir={_PROJECTOR_DIR.value})')


def main(argv):
  del argv
  for name in ('experiment', 'checkpoint', 'input_path', 'output_file'):
    if not getattr(flags.FLAGS, name):
      raise app.UsageError(f'--{name} is required')
  jobs = _jobs()
  projector_npz = _projector_output(jobs) if _PROJECTOR_DIR.value else None
  # --experiment, --config_file, --params_override: Model Garden's flags,
  # parsed as cvrl.tools.train parses them.
  params = launch.parse_flags(flags.FLAGS)
  launch.prepare(params, training=False)  # precision for this machine
  try:
    summaries = feature_export.export_many(
        params, _CHECKPOINT.value, jobs, num_clips=_NUM_CLIPS.value,
        num_crops=_NUM_CROPS.value, average_views=_AVERAGE.value,
        batch_size=_BATCH.value, view_size=_VIEW_SIZE.value)
  except (checkpoint_restore.RestoreError, ValueError) as e:
    print(f'export_features: error: {e}', file=sys.stderr)
    return 1
  if projector_npz:
    _write_projector(projector_npz)
  for summary in summaries:
    print(f"export_features: {summary['videos']} videos, views of "
          f"{summary['num_frames']} x {summary['view_size']} x "
          f"{summary['view_size']}, features {summary['shape']} from "
          f"{summary['checkpoint']} -> {summary['output']}")
  return 0


def run_main():
  tfm_flags.define_flags()
  flags.adopt_module_key_flags(tfm_flags)
  cli.run(main)


if __name__ == '__main__':
  run_main()
