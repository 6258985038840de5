"""Features for TensorBoard's embedding projector.

`write` puts into a log dir what the projector reads: the features as a
checkpointed variable, `metadata.tsv` (label, clip id per row) and
`projector_config.pbtxt` tying them together, so

  tensorboard --logdir=LOG_DIR     (tab PROJECTOR)

shows the videos as a point cloud coloured by label.
"""

import os
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf
from tensorboard.plugins import projector

from cvrl import files

METADATA = 'metadata.tsv'
TENSOR_NAME = 'embedding/.ATTRIBUTES/VARIABLE_VALUE'


def write(log_dir: str, features: np.ndarray, labels: Sequence[int],
          ids: Sequence[str], label_names: Optional[Sequence[str]] = None
          ) -> str:
  """Writes the projector files of [N, D] `features`; returns the config
  path. label_names: text of each label index (default: the index)."""
  features = np.asarray(features, np.float32)
  if features.ndim != 2 or len(features) != len(labels) != len(ids):
    raise ValueError(f'features {features.shape}, {len(labels)} labels, '
                     f'{len(ids)} ids: expected [N, D] and N of each')
  tf.io.gfile.makedirs(log_dir)
  with files.open_file(os.path.join(log_dir, METADATA), 'w') as f:
    f.write('label\tid\n')
    for label, clip_id in zip(labels, ids):
      name = label_names[label] if label_names is not None and 0 <= (
          label) < len(label_names) else str(label)
      # Tabs and newlines would break the TSV.
      clean = lambda t: str(t).replace('\t', ' ').replace('\n', ' ')
      f.write(f'{clean(name)}\t{clean(clip_id)}\n')
  checkpoint = tf.train.Checkpoint(embedding=tf.Variable(features))
  checkpoint.save(os.path.join(log_dir, 'embedding.ckpt'))
  config = projector.ProjectorConfig()
  embedding = config.embeddings.add()
  embedding.tensor_name = TENSOR_NAME
  embedding.metadata_path = METADATA
  projector.visualize_embeddings(log_dir, config)
  return os.path.join(log_dir, 'projector_config.pbtxt')
