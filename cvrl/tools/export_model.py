r"""Exports a pretrained encoder as a TF SavedModel (no project code needed).

  python -m cvrl.tools.export_model --experiment=cvrl_linear_eval_k400 \
      --checkpoint=gs://BUCKET/cvrl/pretrain_k400 --output_dir=gs://BUCKET/r3d50_savedmodel
  # a classification run with its classifier head (adds 'logits'):
  python -m cvrl.tools.export_model --experiment=cvrl_linear_eval_k400 \
      --checkpoint=gs://BUCKET/cvrl/linear_k400 --with_head --output_dir=...

Then, anywhere with TensorFlow:
  encoder = tf.saved_model.load(PATH)
  features = encoder.signatures['serving_default'](clips=uint8_clips)['features']
  layer = tensorflow_hub.KerasLayer(PATH, trainable=True)   # to fine-tune

The experiment (plus --config_file / --params_override) says the backbone,
the clip length and the view size (its evaluation view; --size overrides);
--checkpoint=random_init exports the randomly initialised backbone.

--format=model_garden writes the backbone instead as the checkpoint format
of the authors' release (Model Garden's video_ssl `ResNet3D`,
OUTPUT_DIR/backbone-1), which video_ssl's linear evaluation reads
(task.init_checkpoint=OUTPUT_DIR/backbone-1, init_checkpoint_modules:
backbone); R3D-50/101/152 at width 1 on RGB frames:

  python -m cvrl.tools.export_model --experiment=cvrl_linear_eval_k600 \
      --checkpoint=gs://BUCKET/cvrl/pretrain_k600 --format=model_garden \
      --output_dir=gs://BUCKET/cvrl/pretrain_k600_model_garden
"""

import os
import sys

from absl import app
from absl import flags

from official.common import flags as tfm_flags

from cvrl import registry_imports  # noqa: F401  pylint: disable=unused-import
from cvrl.configs import base
from cvrl.configs import launch
from cvrl.eval import saved_model
from cvrl.modeling import checkpoint_restore
from cvrl.modeling import model_garden_checkpoint
from cvrl.tools import cli

_CHECKPOINT = flags.DEFINE_string(
    'checkpoint', None, "Checkpoint prefix or folder; 'random_init': the "
    'backbone at its random initialisation.')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None,
                                  'Folder of the SavedModel to write.')
_WITH_HEAD = flags.DEFINE_bool('with_head', False,
                               'Include a classification run\'s head.')
_FORMAT = flags.DEFINE_enum(
    'format', 'saved_model', ['saved_model', 'model_garden'],
    'saved_model: a SavedModel taking uint8 clips; model_garden: the '
    'backbone as a checkpoint of Model Garden\'s video_ssl ResNet3D (the '
    'released encoders\' format), OUTPUT_DIR/backbone-1.')
_SIZE = flags.DEFINE_integer('size', 0, 'Height and width of the clips (0: '
                             'the experiment\'s evaluation view size).')


def main(argv):
  del argv
  for name in ('experiment', 'checkpoint', 'output_dir'):
    if not getattr(flags.FLAGS, name):
      raise app.UsageError(f'--{name} is required')
  try:
    params = launch.parse_flags(flags.FLAGS)
    launch.prepare(params, training=False)
    if _FORMAT.value == 'model_garden' and _WITH_HEAD.value:
      raise ValueError('--with_head: the model_garden format holds the '
                       'backbone only')
    encoder = saved_model.build_encoder(params, _CHECKPOINT.value,
                                        _WITH_HEAD.value, _SIZE.value)
    if _FORMAT.value == 'model_garden':
      written = model_garden_checkpoint.save(
          encoder.backbone, os.path.join(_OUTPUT_DIR.value, 'backbone-1'))
      print(f'export_model: {written}: Model Garden ResNet3D checkpoint '
            '(tf.train.Checkpoint(backbone=...)); frames in [0, 1]')
      return 0
    saved_model.export(encoder, _OUTPUT_DIR.value)
  except (checkpoint_restore.RestoreError, base.ConfigError,
          ValueError) as e:
    print(f'export_model: error: {e}', file=sys.stderr)
    return 1
  print(f'export_model: {_OUTPUT_DIR.value}: clips uint8 [batch, '
        f'{encoder.frames}, {encoder.size}, {encoder.size}, 3] -> features'
        + (' and logits' if encoder.head is not None else ''))
  return 0


def run_main():
  tfm_flags.define_flags()
  flags.adopt_module_key_flags(tfm_flags)
  cli.run(main)


if __name__ == '__main__':
  run_main()
