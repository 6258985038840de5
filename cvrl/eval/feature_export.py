"""Backbone features of any video TFRecords, for probing and retrieval.

The library behind `python -m cvrl.tools.export_features`: builds the backbone an
experiment configures, restores it from a checkpoint (checked variable by
variable), runs every video's test views through it and writes

  features  float32 [N, D] (views averaged) or [N, V, D] (per view)
  labels    int32 [N] (-1 for unlabelled videos)
  ids       str [N] (clip ids as the converter wrote them)

to an .npz file. Views: num_clips evenly spaced clips x num_crops crops of
the test pipeline (1 x 1 is the centre clip, centre crop), at the size the
experiment evaluates at (a pretraining experiment: its crop size; an
evaluation experiment: its test short side) unless view_size says otherwise.
"""

import contextlib
from typing import Dict, List, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tf_keras

from cvrl import files
from cvrl import progress as progress_lib
from cvrl.eval import multiview
from cvrl.configs import video_data
from cvrl.data import dataset_size
from cvrl.data import pipelines
from cvrl.modeling import checkpoint_restore
from cvrl.modeling import cvrl_model


def evaluation_view_size(params) -> int:
  """The view size the experiment evaluates at: its test short side for a
  multi-view ('test') validation input, else its crop size (a pretraining
  experiment's views: the resolution its encoder was trained on)."""
  validation = params.task.validation_data
  return (validation.test_short_side if validation.mode == 'test'
          else validation.crop_size)


def export_data_config(params, pattern: str, num_clips: int, num_crops: int,
                       batch_size: int,
                       view_size: int = 0) -> video_data.VideoDataConfig:
  """The experiment's validation input, turned to deterministic test views of
  the videos matching `pattern`: short side resized to `view_size` (0: the
  experiment's own, `evaluation_view_size`), square crops of that size."""
  view_size = view_size or evaluation_view_size(params)
  data = video_data.VideoDataConfig()
  data.override(params.task.validation_data.as_dict(), is_strict=False)
  data.override(dict(
      mode='test', is_training=False, repeat=False, drop_remainder=False,
      input_path=pattern, tfds_name='', num_test_clips=num_clips,
      num_test_crops=num_crops, global_batch_size=batch_size,
      dtype='float32', start_step=0, test_short_side=view_size,
      crop_size=min(data.crop_size, view_size)), is_strict=True)
  data.validate()
  return data


RANDOM_INIT = 'random_init'


def export_features(params, checkpoint: str, pattern: str, output: str,
                    num_clips: int = 1, num_crops: int = 1,
                    average_views: bool = True, batch_size: int = 8,
                    view_size: int = 0,
                    progress: bool = True) -> Dict[str, object]:
  """Writes the .npz described above; returns {'videos', 'shape',
  'view_size', ...}.

  checkpoint = RANDOM_INIT: no checkpoint, the backbone as initialised with
  the experiment's task.init_seed (the baseline every probe is read
  against: what the architecture alone gives).
  """
  return export_many(params, checkpoint, [(pattern, output)], num_clips,
                     num_crops, average_views, batch_size, view_size,
                     progress)[0]


def export_many(params, checkpoint: str,
                jobs: Sequence[Tuple[str, str]], num_clips: int = 1,
                num_crops: int = 1, average_views: bool = True,
                batch_size: int = 8, view_size: int = 0,
                progress: bool = True) -> List[Dict[str, object]]:
  """`export_features` for each (pattern, output) of `jobs` (the splits of
  a dataset, say) with one backbone, built and restored once; a summary
  per job, in order."""
  if not jobs:
    raise ValueError('export_many: no (pattern, output) to export')
  configs = [export_data_config(params, pattern, num_clips, num_crops,
                                batch_size, view_size)
             for pattern, _ in jobs]
  if checkpoint == RANDOM_INIT:
    tf_keras.utils.set_random_seed(params.task.init_seed)
  backbone = cvrl_model.build_backbone(
      params.task.model, (configs[0].num_frames, None, None, 3))
  if checkpoint == RANDOM_INIT:
    used = f'{RANDOM_INIT} (init_seed {params.task.init_seed})'
  else:
    used = checkpoint_restore.restore_backbone(backbone, checkpoint)

  @tf.function
  def features_of(images):
    folded, num_views = multiview.fold_views(images)
    out = tf.cast(backbone(folded, training=False), tf.float32)
    return tf.reshape(out, [tf.shape(images)[0], num_views, -1])

  summaries = []
  for (_, output), data in zip(jobs, configs):
    result = _features_of_videos(features_of, data, average_views, progress)
    # Any path (gs:// too); a killed run never leaves a truncated file
    # under the final name.
    files.save_npz(output, **result)
    summaries.append({'videos': len(result['ids']),
                      'shape': result['features'].shape,
                      'checkpoint': used, 'output': output,
                      'view_size': data.test_short_side,
                      'num_frames': data.num_frames})
  return summaries


def _features_of_videos(features_of, data: video_data.VideoDataConfig,
                        average_views: bool,
                        progress: bool) -> Dict[str, np.ndarray]:
  """{'features', 'labels', 'ids'} of every video `data` reads."""
  pattern = data.input_path
  features, labels, ids = [], [], []
  # Progress on stderr: tqdm's bar on a terminal, a line every 30 s in a log.
  total = dataset_size.count(pattern)
  with (progress_lib.Progress(total, desc='export_features') if progress
        else contextlib.nullcontext(None)) as bar:
    for batch in pipelines.build_dataset(data, keep_ids=True):
      views = features_of(batch['image']).numpy()
      features.append(views.mean(axis=1) if average_views else views)
      labels.append(batch['label'].numpy())
      ids.extend(i.decode('utf-8') for i in batch['id'].numpy())
      if bar is not None:
        bar.update(len(views))
  if not features:
    raise ValueError(f'{pattern}: no video to export')
  return dict(features=np.concatenate(features).astype(np.float32),
              labels=np.concatenate(labels).astype(np.int32),
              ids=np.array(ids))
