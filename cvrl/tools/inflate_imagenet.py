r"""Writes an ImageNet-inflated R3D backbone checkpoint (paper 4.2 baseline).

  # tf_keras.applications ResNet50 ImageNet weights (the 'notop' .h5 file):
  python -m cvrl.tools.inflate_imagenet --source=keras_applications \
      --weights=resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5 \
      --output_dir=/data/inflated/r3d50_imagenet
  # a SimCLR ResNet-50 checkpoint (google-research/simclr, TF1 model.ckpt-*):
  python -m cvrl.tools.inflate_imagenet --source=simclr \
      --weights=ResNet50_1x/model.ckpt-225206 --output_dir=/data/inflated/r3d50_simclr
  # weights of the R3D's 2D twin (r3d.build_resnet2d_twin), .h5 or checkpoint:
  python -m cvrl.tools.inflate_imagenet --source=twin --weights=twin.weights.h5 \
      --depth=50 --width_multiplier=1 --output_dir=/data/inflated/r3d50_imagenet

The output restores like a pretraining checkpoint, e.g. the ImageNet-inflated
linear evaluation:
  python -m cvrl.tools.train --experiment=cvrl_linear_eval_k400 ... \
      --params_override=task.init_checkpoint=/data/inflated/r3d50_imagenet
"""

import os
import sys

from absl import app
from absl import flags
import tensorflow as tf
import tf_keras

from cvrl.configs import modeling as modeling_cfg
from cvrl.modeling import checkpoint_restore
from cvrl.modeling import inflation
from cvrl.modeling import r3d
from cvrl.tools import cli

_SOURCE = flags.DEFINE_enum('source', 'keras_applications',
                            ['keras_applications', 'simclr', 'twin'],
                            'What network the weights belong to.')
_WEIGHTS = flags.DEFINE_string('weights', None,
                               '2D weights: .h5 file or TF checkpoint prefix.')
_PREFIX = flags.DEFINE_string(
    'simclr_prefix', inflation.SIMCLR_PREFIX,
    "--source=simclr: variable scope of the ResNet ('ema_model/base_model/' "
    'for SimCLR v2 EMA weights).')
_OUTPUT_DIR = flags.DEFINE_string(
    'output_dir', None, 'Folder to write the R3D checkpoint in (restorable '
    'by giving the folder).')
cli.deprecated_alias('output', 'output_dir')
_DEPTH = flags.DEFINE_integer('depth', 50, 'R3D depth (keras_applications: 50).')
_WIDTH = flags.DEFINE_float('width_multiplier', 1.0, 'R3D width.')
_MODE = flags.DEFINE_enum('mode', 'mean', list(inflation.INFLATION_MODES),
                          "'mean': repeat over time / t; 'center': middle tap.")


def main(argv):
  del argv
  if not _WEIGHTS.value or not _OUTPUT_DIR.value:
    raise app.UsageError('--weights and --output_dir are required')
  config = modeling_cfg.R3DConfig(depth=_DEPTH.value,
                                  width_multiplier=_WIDTH.value)
  twin = r3d.build_resnet2d_twin(config)
  try:
    if _SOURCE.value == 'keras_applications':
      source = tf_keras.applications.ResNet50(
          include_top=False, weights=None, input_shape=(224, 224, 3))
      source.load_weights(_WEIGHTS.value, skip_mismatch=False,
                          by_name=_WEIGHTS.value.endswith('.h5'))
      inflation.keras_applications_to_twin(source, twin)
    elif _SOURCE.value == 'simclr':
      inflation.simclr_to_twin(_WEIGHTS.value, twin, _DEPTH.value,
                               _PREFIX.value)
    else:
      twin.load_weights(_WEIGHTS.value)
    video = r3d.build_r3d(config)
    count = inflation.inflate_weights(twin, video, _MODE.value)
  except (inflation.InflationError, ValueError, OSError,
          tf.errors.OpError) as e:
    print(f'inflate_imagenet: error: {e}', file=sys.stderr)
    return 1
  path = checkpoint_restore.save_backbone(
      video, os.path.join(_OUTPUT_DIR.value, 'backbone'))
  print(f'inflate_imagenet: {count} weights inflated into {video.name} '
        f'-> {path}')
  return 0


def run_main():
  cli.run(main)


if __name__ == '__main__':
  run_main()
