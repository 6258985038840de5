"""The pretrained encoder as a TF SavedModel: usable without this project.

`export` writes a SavedModel holding the R3D backbone (and, for a
classification run, its classifier head) with

  signature 'serving_default': clips uint8 [batch, T, H, W, 3] ->
    {'features': float32 [batch, D]} (+ 'logits' [batch, classes])
  __call__(clips, training): the same as a function a Keras layer can wrap
    (tensorflow_hub.KerasLayer(path, trainable=True) fine-tunes it)

T, H and W are the experiment's (`frames`, `size` in the docstring of the
signature); pixels are scaled to [0, 1] (or [-1, 1] when the experiment
zero-centres) inside, as the input pipelines do, and residual-frame
encoders take the frame differences inside too (they belong to the
backbone), so callers pass plain decoded frames.

Batch norm: `training=False` (serving, and KerasLayer's inference) uses the
moving statistics learnt in pretraining; a KerasLayer with trainable=True
called with training=True normalises with the batch's statistics and
updates the moving ones (tf_keras's BatchNormalization), as fine-tuning in
this project does. Freeze BN by calling the layer with training=False.
"""

import tensorflow as tf
import tf_keras

from cvrl.eval import feature_export
from cvrl.modeling import checkpoint_restore
from cvrl.modeling import classifier
from cvrl.modeling import cvrl_model


class VideoEncoder(tf.__internal__.tracking.AutoTrackable):
  """Backbone (+ head) behind a uint8-clip interface (see the module doc).

  The attributes `variables`, `trainable_variables` and
  `regularization_losses` are TF Hub's reusable-SavedModel interface, what
  `hub.KerasLayer(..., trainable=True)` trains.
  """

  def __init__(self, backbone: tf_keras.Model, frames: int, size: int,
               zero_centering: bool, head=None):
    super().__init__()
    self.backbone = backbone
    self.head = head
    self._zero_centering = zero_centering
    self.frames, self.size = frames, size
    self.variables = list(backbone.variables)
    self.trainable_variables = list(backbone.trainable_variables)
    self.regularization_losses = []
    spec = tf.TensorSpec([None, frames, size, size, 3], tf.uint8,
                         name='clips')
    self.__call__ = tf.function(self._call, input_signature=[
        spec, tf.TensorSpec([], tf.bool, name='training')])
    self.serve = tf.function(self._serve, input_signature=[spec])
    self.serve.__doc__ = (
        f'clips: uint8 [batch, {frames}, {size}, {size}, 3] decoded RGB '
        'frames (any batch) -> features float32 [batch, D]'
        + (', logits [batch, classes]' if head is not None else ''))

  def _scaled(self, clips):
    images = tf.cast(clips, tf.float32) / 255.0
    return images * 2.0 - 1.0 if self._zero_centering else images

  def _features(self, clips, training):
    return tf.cast(self.backbone(self._scaled(clips), training=training),
                   tf.float32)

  def _call(self, clips, training):
    return tf.cond(training, lambda: self._features(clips, True),
                   lambda: self._features(clips, False))

  def _serve(self, clips):
    outputs = {'features': self._features(clips, False)}
    if self.head is not None:
      outputs['logits'] = self.head(self._scaled(clips), training=False)
    return outputs


def build_encoder(params, checkpoint: str, with_head: bool = False,
                  size: int = 0) -> VideoEncoder:
  """The backbone of `params` (restored from `checkpoint`, or RANDOM_INIT),
  as a VideoEncoder at the experiment's evaluation view size."""
  data = params.task.validation_data
  frames = data.num_frames
  size = size or feature_export.evaluation_view_size(params)
  head = None
  if with_head:
    if not hasattr(params.task.model, 'head') or not hasattr(
        params.task.model.head, 'normalize_features'):
      raise ValueError('--with_head needs a classification experiment '
                       '(linear evaluation, fine-tuning, supervised)')
    if checkpoint != feature_export.RANDOM_INIT:
      prefix = checkpoint_restore.resolve_checkpoint(checkpoint)
    head_config = params.task.model.head
    if head_config.num_classes == 0 and checkpoint != feature_export.RANDOM_INIT:
      # 'From the label map' (cvrl_linear_eval_small): the run that wrote
      # the checkpoint resolved it; its params.yaml says how many.
      head_config.num_classes = int(checkpoint_restore.param_at(
          checkpoint_restore.run_params(prefix),
          ('task', 'model', 'head', 'num_classes'), 0))
    if head_config.num_classes < 2:
      raise ValueError(
          f'task.model.head.num_classes={head_config.num_classes}: set it '
          '(--params_override=task.model.head.num_classes=N) for a '
          'checkpoint without its run\'s params.yaml')
    model = classifier.build_classifier(params.task)
    if checkpoint != feature_export.RANDOM_INIT:
      status = tf.train.Checkpoint(model=model).read(prefix)
      status.expect_partial().assert_existing_objects_matched()
    backbone, head = model.backbone, model
  else:
    if checkpoint == feature_export.RANDOM_INIT:
      tf_keras.utils.set_random_seed(params.task.init_seed)
    backbone = cvrl_model.build_backbone(params.task.model,
                                         (frames, None, None, 3))
    if checkpoint != feature_export.RANDOM_INIT:
      checkpoint_restore.restore_backbone(backbone, checkpoint)
  return VideoEncoder(backbone, frames, size, data.zero_centering, head)


def export(encoder: VideoEncoder, output_dir: str) -> None:
  """Writes the SavedModel (any tf.io.gfile path)."""
  tf.saved_model.save(encoder, output_dir, signatures={
      'serving_default': encoder.serve.get_concrete_function()})
