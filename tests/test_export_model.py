"""The encoder outside the job: SavedModel export (loaded without this
project, fine-tuned through a Keras layer), retrieval, the projector."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from official.core import exp_factory

from cvrl import files
from cvrl import registry_imports  # pylint: disable=unused-import  # noqa: F401
from cvrl.data import pipelines
from cvrl.eval import feature_export
from cvrl.eval import projector
from cvrl.eval import retrieval
from cvrl.eval import saved_model
from tests.conftest import pretrained_checkpoint
from tests.conftest import run_module

FRAMES, SIZE, WIDTH = 4, 32, 0.125


def _params():
  params = exp_factory.get_exp_config('cvrl_linear_eval_demo')
  params.task.model.backbone.cvrl_r3d.width_multiplier = WIDTH
  params.task.validation_data.num_frames = FRAMES
  params.task.train_data.num_frames = FRAMES
  return params


@pytest.fixture(scope='module')
def exported(synthetic_records, tmp_path_factory):
  """A pretraining checkpoint, its SavedModel, and export_features' .npz
  and uint8 clips of the same validation views."""
  root = tmp_path_factory.mktemp('export')
  _, checkpoint = pretrained_checkpoint(str(root / 'ckpt'), WIDTH,
                                        (FRAMES, SIZE, SIZE, 3))
  params = _params()
  pattern = f'{synthetic_records}/val/val-*.tfrecord'
  feature_export.export_features(params, checkpoint, pattern,
                                 str(root / 'val.npz'), batch_size=4,
                                 view_size=SIZE, progress=False)
  # The clips export_features saw: the synthetic videos are SIZE x SIZE,
  # so the views are the decoded frames, exactly uint8 after x 255.
  data = feature_export.export_data_config(params, pattern, 1, 1, 4, SIZE)
  clips = np.concatenate([b['image'].numpy()[:, 0] for b in
                          pipelines.build_dataset(data, keep_ids=True)])
  as_uint8 = np.round(clips * 255.0)
  np.testing.assert_allclose(clips * 255.0, as_uint8, atol=1e-3)
  np.save(root / 'clips.npy', as_uint8.astype(np.uint8))
  result = run_module('cvrl.tools.export_model',
                      '--experiment=cvrl_linear_eval_demo',
                      '--params_override=task.model.backbone.cvrl_r3d.'
                      f'width_multiplier={WIDTH},task.validation_data.'
                      f'num_frames={FRAMES},task.train_data.num_frames='
                      f'{FRAMES}', f'--checkpoint={checkpoint}',
                      f'--size={SIZE}', f'--output_dir={root}/savedmodel')
  assert f'[batch, {FRAMES}, {SIZE}, {SIZE}, 3]' in result.stdout
  return root


def test_savedmodel_gives_export_features_without_this_project(exported):
  # A fresh interpreter in which this project cannot be imported (an
  # import of cvrl or tfrecords_tools raises): only TensorFlow.
  script = textwrap.dedent(f'''
      import sys
      sys.modules['cvrl'] = None
      sys.modules['tfrecords_tools'] = None
      import numpy as np, tensorflow as tf
      model = tf.saved_model.load({str(exported / 'savedmodel')!r})
      clips = np.load({str(exported / 'clips.npy')!r})
      out = model.signatures['serving_default'](clips=tf.constant(clips))
      np.save({str(exported / 'served.npy')!r}, out['features'].numpy())
      print(any(m.startswith(('cvrl.', 'tfrecords_tools.'))
                for m in sys.modules))
  ''')
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  env.pop('PYTHONPATH', None)
  result = subprocess.run([sys.executable, '-c', script], cwd='/',
                          env=env, capture_output=True, text=True,
                          timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.split()[-1] == 'False'
  served = np.load(exported / 'served.npy')
  want = files.load_npz(str(exported / 'val.npz'))['features']
  assert served.shape == want.shape
  np.testing.assert_allclose(served, want, atol=1e-4)


def test_fine_tuning_through_a_keras_layer_changes_the_loss(exported):
  hub = pytest.importorskip('tensorflow_hub')
  import tf_keras  # pylint: disable=g-import-not-at-top
  layer = hub.KerasLayer(str(exported / 'savedmodel'), trainable=True)
  model = tf_keras.Sequential([
      tf_keras.Input((FRAMES, SIZE, SIZE, 3), dtype=tf.uint8), layer,
      tf_keras.layers.Dense(8)])
  assert model.trainable_variables and len(layer.trainable_weights) > 2
  clips = tf.constant(np.load(exported / 'clips.npy')[:8])
  labels = tf.range(8) % 8
  loss_fn = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)
  optimizer = tf_keras.optimizers.SGD(0.5)
  before = [v.numpy().copy() for v in layer.trainable_weights]
  losses = []
  for _ in range(2):
    with tf.GradientTape() as tape:
      loss = loss_fn(labels, model(clips, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    losses.append(float(loss))
  assert losses[1] != losses[0]
  assert any(np.abs(v.numpy() - b).max() > 0
             for v, b in zip(layer.trainable_weights, before))


def test_retrieval_on_hand_made_features():
  gallery = np.array([[1, 0], [0, 1], [1, 1], [-1, 0]], np.float32)
  gallery_labels = np.array([0, 1, 2, 3])
  # Query 0 is nearest [1, 0] (its class): a hit at 1. Query 1 is nearest
  # [1, 0] then [1, 1] then [0, 1] (its class 1): a hit only from k = 3.
  query = np.array([[2, 0.1], [1, 0.2]], np.float32)
  query_labels = np.array([0, 1])
  got = retrieval.recall_at_k(query, query_labels, gallery, gallery_labels,
                              (1, 2, 3, 20))
  assert got == {1: 0.5, 2: 0.5, 3: 1.0, 20: 1.0}
  # Cosine, not Euclidean: scale does not matter.
  scaled = retrieval.recall_at_k(query * 100, query_labels, gallery,
                                 gallery_labels, (1, 2, 3, 20))
  assert scaled == got
  with pytest.raises(ValueError, match='same D'):
    retrieval.recall_at_k(query, query_labels, gallery[:, :1],
                          gallery_labels)


def test_retrieval_command_reads_feature_files(tmp_path):
  rng = np.random.default_rng(0)
  centres = rng.normal(size=(4, 16))
  labels = np.repeat(np.arange(4), 5)
  train = centres[labels] + 0.01 * rng.normal(size=(20, 16))
  test = centres[labels] + 0.01 * rng.normal(size=(20, 16))
  files.save_npz(str(tmp_path / 'train.npz'), features=train, labels=labels)
  files.save_npz(str(tmp_path / 'test.npz'), features=test, labels=labels)
  result = run_module('cvrl.tools.retrieval', f'--train={tmp_path}/train.npz',
                      f'--test={tmp_path}/test.npz', '--name=tight')
  assert result.stdout.strip() == (
      'tight      R@1 100.00  R@5 100.00  R@10 100.00  R@20 100.00')


def test_projector_files_read_back(tmp_path):
  from tensorboard.plugins import projector as tb_projector  # pylint: disable=g-import-not-at-top
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  features = np.arange(12, dtype=np.float32).reshape(4, 3)
  config_path = projector.write(str(tmp_path), features, [0, 1, 1, 0],
                                ['a.mp4', 'b\t.mp4', 'c.mp4', 'd.mp4'],
                                ['left', 'right'])
  config = text_format.Parse(open(config_path).read(),
                             tb_projector.ProjectorConfig())
  embedding = config.embeddings[0]
  assert embedding.metadata_path == projector.METADATA
  reader = tf.train.load_checkpoint(str(tmp_path))
  np.testing.assert_array_equal(reader.get_tensor(embedding.tensor_name),
                                features)
  rows = (tmp_path / projector.METADATA).read_text().splitlines()
  assert rows == ['label\tid', 'left\ta.mp4', 'right\tb .mp4',
                  'right\tc.mp4', 'left\td.mp4']


def test_classification_run_exports_its_head(exported, tmp_path):
  from cvrl.modeling import classifier  # pylint: disable=g-import-not-at-top
  params = _params()
  model = classifier.build_classifier(params.task)
  clips = np.load(exported / 'clips.npy')[:4]
  want = model(tf.constant(clips, tf.float32) / 255.0, training=False)
  tf.train.Checkpoint(model=model).save(str(tmp_path / 'run' / 'ckpt'))
  encoder = saved_model.build_encoder(params, str(tmp_path / 'run'),
                                      with_head=True, size=SIZE)
  saved_model.export(encoder, str(tmp_path / 'savedmodel'))
  loaded = tf.saved_model.load(str(tmp_path / 'savedmodel'))
  out = loaded.signatures['serving_default'](clips=tf.constant(clips))
  np.testing.assert_allclose(out['logits'].numpy(), want.numpy(), atol=1e-4)
  assert out['features'].shape == (4, model.backbone.output_shape[-1])
  with pytest.raises(ValueError, match='classification experiment'):
    saved_model.build_encoder(
        exp_factory.get_exp_config('cvrl_pretrain_demo'), 'random_init',
        with_head=True)
