"""convert_ava on a synthetic AVA: records, exact keyframe frames, boxes,
bad annotation rows, resume, Beam, and inspect_tfrecords --ava."""

import json
import os
import shutil

import av
import numpy as np
import pytest
import tensorflow as tf

from cvrl.data import ava_files
from cvrl.data import features
from tests.conftest import run_module
from tfrecords_tools.conversion import ava_keyframes
from tfrecords_tools.conversion import job
from tfrecords_tools.conversion import shards
from tfrecords_tools.datasets import synthetic_ava

FPS, CLIP = 10, 16


@pytest.fixture(scope='module')
def ava_root(tmp_path_factory):
  root = str(tmp_path_factory.mktemp('syn_ava'))
  synthetic_ava.make_dataset(root, {'train': 2, 'val': 1}, seconds=8.0,
                             fps=FPS, height=48, width=64, seed=3)
  return root


def _notes(root, name):
  return os.path.join(root, 'annotations', name)


def _convert(root, out, *extra, split='train'):
  return run_module(
      'tfrecords_tools.convert_ava', f'--split={split}',
      f'--annotation_dir={_notes(root, "")}',
      f'--video_root={os.path.join(root, "movies")}', f'--output_dir={out}',
      f'--fps={FPS}', f'--clip_frames={CLIP}', '--short_side=0',
      '--num_shards=2', '--workers=2', *extra)


def _records(out):
  files = sorted(tf.io.gfile.glob(os.path.join(out, '*.tfrecord')))
  return [tf.train.SequenceExample.FromString(r) for r in
          tf.data.TFRecordDataset(files).as_numpy_iterator()]


def _manifest(out):
  with open(os.path.join(out, shards.MANIFEST_FILE)) as f:
    return [json.loads(line) for line in f]


@pytest.fixture(scope='module')
def converted(ava_root, tmp_path_factory):
  out = str(tmp_path_factory.mktemp('ava_tfr'))
  result = _convert(ava_root, out)
  return out, result


def test_one_record_per_keyframe_excluded_ones_listed(ava_root, converted):
  out, result = converted
  rows, _ = ava_files.read_boxes(_notes(ava_root, 'ava_train_v2.2.csv'))
  keyframes = sorted({r.keyframe for r in rows})
  excluded, _ = ava_files.read_excluded(
      _notes(ava_root, 'ava_train_excluded_timestamps_v2.2.csv'))
  manifest = _manifest(out)
  assert [m['id'] for m in manifest] == [
      ava_files.keyframe_key(*k) for k in keyframes]
  statuses = {m['id']: m['status'] for m in manifest}
  assert {k for k, s in statuses.items() if s == 'excluded'} == {
      ava_files.keyframe_key(*k) for k in excluded}
  records = _records(out)
  assert len(records) == len(keyframes) - len(excluded)
  assert 'ok=' in result.stdout and 'excluded=2' in result.stdout


def test_record_holds_the_csv_boxes_actions_and_proposals(ava_root,
                                                          converted):
  out, _ = converted
  gt = ava_files.group_boxes(ava_files.read_boxes(
      _notes(ava_root, 'ava_train_v2.2.csv'))[0])
  proposals, _ = ava_files.read_boxes(
      _notes(ava_root, 'ava_train_predicted_boxes.csv'), proposals=True)
  for example in _records(out):
    ctx = example.context.feature
    key = ctx[features.CLIP_ID_KEY].bytes_list.value[0].decode()
    video_id, ts = key.split(',')
    expected = gt[(video_id, int(ts))]
    boxes = list(zip(*(ctx[f'{features.BOX_PREFIX}/{c}'].float_list.value
                       for c in features.BOX_COORDINATES)))
    np.testing.assert_allclose(boxes, [e[0] for e in expected], atol=1e-6)
    pairs = list(zip(ctx[features.BOX_LABEL_BOX_KEY].int64_list.value,
                     ctx[features.BOX_LABEL_INDEX_KEY].int64_list.value))
    assert pairs == [(i, a) for i, (_, actions, _, _) in enumerate(expected)
                     for a in actions]
    scores = list(ctx[features.PROPOSAL_SCORE_KEY].float_list.value)
    assert scores == sorted(scores, reverse=True)
    assert sorted(scores) == pytest.approx(sorted(
        p.score for p in proposals if p.keyframe == (video_id, int(ts))))
    assert ctx[features.KEYFRAME_TIMESTAMP_KEY].int64_list.value[0] == int(ts)


def test_keyframe_is_the_movie_frame_at_its_second(ava_root, converted):
  """Frame `clip/keyframe/index` is the movie's frame at (timestamp - 900) s;
  its neighbours are the frames 1 / fps before and after."""
  out, _ = converted
  example = _records(out)[3]
  ctx = example.context.feature
  key = ctx[features.CLIP_ID_KEY].bytes_list.value[0].decode()
  video_id, ts = key.split(',')
  with av.open(os.path.join(ava_root, 'movies', f'{video_id}.mp4')) as movie:
    frames = [f.to_ndarray(format='rgb24') for f in movie.decode(video=0)]
  index = ctx[features.KEYFRAME_INDEX_KEY].int64_list.value[0]
  assert index == CLIP // 2
  jpegs = example.feature_lists.feature_list[features.IMAGE_KEY].feature
  at = (int(ts) - synthetic_ava.MOVIE_START_S) * FPS
  for offset in (-1, 0, 1):
    stored = tf.io.decode_jpeg(
        jpegs[index + offset].bytes_list.value[0]).numpy().astype(float)
    errors = [np.abs(stored - frames[at + offset + d]).mean()
              for d in (-1, 0, 1)]
    assert np.argmin(errors) == 1 and errors[1] < 4.0, errors


def test_bad_rows_are_reported_and_good_keyframes_kept(ava_root, converted,
                                                       tmp_path):
  out_good, _ = converted
  notes = str(tmp_path / 'notes')
  shutil.copytree(_notes(ava_root, ''), notes)
  boxes = os.path.join(notes, 'ava_train_v2.2.csv')
  with open(boxes) as f:
    good = f.read()
  first = good.splitlines()[0].split(',')
  bad = [
      ','.join(first[:4] + ['1.5'] + first[5:]),       # x2 outside [0, 1]
      ','.join(first[:6] + ['77'] + first[7:]),         # unknown action id
      ','.join(['nomovie'] + first[1:]),                # no movie file
  ]
  with open(boxes, 'w') as f:
    f.write(good + '\n'.join(bad) + '\n')
  lines = len(good.splitlines())
  out = str(tmp_path / 'out')
  result = run_module(
      'tfrecords_tools.convert_ava', '--split=train',
      f'--annotation_dir={notes}',
      f'--video_root={os.path.join(ava_root, "movies")}',
      f'--output_dir={out}', f'--fps={FPS}', f'--clip_frames={CLIP}',
      '--short_side=0', '--num_shards=2', '--workers=1')
  for n, text in ((lines + 1, 'outside [0, 1]'),
                  (lines + 2, 'action id 77 is not in the label map'),
                  (lines + 3, "no movie file for video 'nomovie'")):
    assert f'{boxes}:{n}: ' in result.stderr and text in result.stderr
  with open(os.path.join(out, 'annotation_problems.csv')) as f:
    assert len(f.read().splitlines()) == 1 + 3
  assert '3 bad annotation rows' in result.stdout
  # The movie-less keyframe is in the manifest as missing; the rest as before.
  statuses = {m['id']: m['status'] for m in _manifest(out)}
  assert statuses.pop(f'nomovie,{first[1]}') == 'missing'
  assert statuses == {m['id']: m['status'] for m in _manifest(out_good)}
  assert len(_records(out)) == len(_records(out_good))


def test_wrong_movie_start_makes_keyframes_too_short(ava_root, tmp_path):
  out = str(tmp_path / 'out')
  result = run_module(
      'tfrecords_tools.convert_ava', '--split=val',
      f'--annotation_dir={_notes(ava_root, "")}',
      f'--video_root={os.path.join(ava_root, "movies")}',
      f'--output_dir={out}', '--movie_start_s=0', check=False)
  assert result.returncode == 1  # nothing converted: an error, not silence
  rows = [m for m in _manifest(out) if m['status'] != 'excluded']
  assert rows and all(m['status'] == 'too_short' for m in rows)
  assert '--movie_start_s=0' in rows[0]['error']


def test_rerun_resumes_to_identical_bytes(ava_root, converted, tmp_path):
  out_good, _ = converted
  out = str(tmp_path / 'out')
  shutil.copytree(out_good, out)
  victim = sorted(tf.io.gfile.glob(os.path.join(out, '*.tfrecord')))[1]
  with open(victim, 'rb') as f:
    original = f.read()
  os.remove(victim)
  os.remove(os.path.join(out, shards.MANIFEST_DIR,
                         os.path.basename(victim) + '.jsonl'))
  with open(victim + '.tmp-999', 'wb') as f:  # what a kill -9 leaves
    f.write(b'partial')
  _convert(ava_root, out)
  with open(victim, 'rb') as f:
    assert f.read() == original
  assert not tf.io.gfile.glob(os.path.join(out, '*.tmp-*'))
  changed = run_module(
      'tfrecords_tools.convert_ava', '--split=train',
      f'--annotation_dir={_notes(ava_root, "")}',
      f'--video_root={os.path.join(ava_root, "movies")}',
      f'--output_dir={out}', '--fps=5', check=False)
  assert changed.returncode == 2 and 'other options' in changed.stderr


def test_beam_writes_the_same_files(ava_root, converted, tmp_path):
  pytest.importorskip('apache_beam')
  out_good, _ = converted
  labels = ava_files.read_label_map(_notes(ava_root,
                                           'ava_action_list_v2.2.pbtxt'))
  tasks, problems = ava_keyframes.read_split(
      'train', _notes(ava_root, 'ava_train_v2.2.csv'),
      _notes(ava_root, 'ava_train_predicted_boxes.csv'),
      _notes(ava_root, 'ava_train_excluded_timestamps_v2.2.csv'),
      set(labels), os.path.join(ava_root, 'movies'))
  assert not problems
  options = ava_keyframes.ClipOptions(fps=FPS, clip_frames=CLIP,
                                      short_side=0)
  out = str(tmp_path / 'beam')
  job.run_plan(shards.plan_shards(tasks, 2), out, options, 'beam', 1, (),
               ava_keyframes.convert_chunk, ava_keyframes.encode_chunk)
  for name in sorted(os.listdir(out_good)):
    if name.endswith('.tfrecord') or name == shards.MANIFEST_FILE:
      with open(os.path.join(out, name), 'rb') as a, open(
          os.path.join(out_good, name), 'rb') as b:
        assert a.read() == b.read(), name


def test_inspect_reports_boxes_and_draws_a_keyframe(ava_root, converted,
                                                    tmp_path):
  out, _ = converted
  png = str(tmp_path / 'kf.png')
  result = run_module(
      'tfrecords_tools.inspect_tfrecords', '--ava', '--verify',
      f'--input_path={out}/train-*.tfrecord',
      f'--label_map={_notes(ava_root, "ava_action_list_v2.2.pbtxt")}',
      f'--draw_keyframe={png}', '--draw_index=1')
  records = _records(out)
  total = sum(len(r.context.feature[f'{features.BOX_PREFIX}/xmin']
                  .float_list.value) for r in records)
  assert f'{len(records)} keyframes' in result.stdout
  assert f'total {total}' in result.stdout
  assert 'walk left' in result.stdout and 'ERRORS' not in result.stdout
  image = tf.io.decode_png(tf.io.read_file(png)).numpy()
  assert image.shape == (48 * 4, 64 * 4, 3)
  # The ground-truth boxes are drawn in pure green.
  assert ((image == [0, 255, 0]).all(axis=-1)).sum() > 50


def test_keyframes_with_only_proposals_are_kept_unless_annotated_only(
    ava_root, tmp_path):
  proposals = tmp_path / 'proposals.csv'
  with open(_notes(ava_root, 'ava_train_predicted_boxes.csv')) as f:
    text = f.read()
  video = text.split(',')[0]
  proposals.write_text(text + f'{video},0950,0.1,0.1,0.3,0.5,,0.99\n')
  args = ('train', _notes(ava_root, 'ava_train_v2.2.csv'), str(proposals),
          None, None, os.path.join(ava_root, 'movies'))

  def keyframes(**kwargs):
    tasks, _ = ava_keyframes.read_split(*args, **kwargs)
    return {(t.video_id, k.timestamp) for t in tasks for k in t.keyframes}
  everything = keyframes()
  annotated = keyframes(annotated_only=True)
  assert everything - annotated == {(video, 950)}
  gt, _ = ava_files.read_boxes(_notes(ava_root, 'ava_train_v2.2.csv'))
  assert annotated == {r.keyframe for r in gt}


def test_every_keyframe_of_a_low_frame_rate_movie_converts(tmp_path):
  # A 6 fps movie file that starts at 900.07 s of the movie: keyframe
  # 902's 21-frame clip at 10 fps spans [0.93, 2.93] s of the file (the
  # first keyframe of the chunk), and the frame on screen at 0.93 s is the
  # one shown from 0.833 s.
  from tests.test_video_decoder import _on_screen  # pylint: disable=g-import-not-at-top
  from tests.test_video_decoder import _source_indices  # pylint: disable=g-import-not-at-top
  from tests.test_video_decoder import _write_timed_video  # pylint: disable=g-import-not-at-top
  times = [k / 6 for k in range(40)]
  path = _write_timed_video(tmp_path / 'movie.mp4', times)
  options = ava_keyframes.ClipOptions(fps=10, clip_frames=21, short_side=0,
                                      jpeg_quality=95, movie_start_s=900.07)
  chunk = ava_keyframes.MovieChunk('movie', path, 'val', (
      ava_keyframes.Keyframe(902), ava_keyframes.Keyframe(903)))
  result = ava_keyframes.convert_chunk(chunk, options)
  statuses = [status for _, status, _, _ in result.clips]
  assert statuses == ['ok', 'ok'], [c[3] for c in result.clips]
  for (keyframe, _, jpegs, _), centre in zip(result.clips, (1.93, 2.93)):
    ticks = [centre + (k - 10) / 10 for k in range(21)]
    decoded = [tf.io.decode_jpeg(j).numpy() for j in jpegs]
    got = _source_indices(type('D', (), {'frames': decoded}))
    assert got == [_on_screen(times, min(t, times[-1])) for t in ticks], (
        keyframe.timestamp)
