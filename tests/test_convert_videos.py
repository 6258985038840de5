"""The converter end to end: statuses, keys, label maps, runners, resuming."""

import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from cvrl.data import features
from tests.conftest import REAL_VIDEOS
from tests.conftest import real_video
from tests.conftest import REPO_ROOT
from tests.conftest import run_module
from tfrecords_tools.conversion import job
from tfrecords_tools.conversion import shards
from tfrecords_tools.conversion import sources
from tfrecords_tools.conversion import video_frames

OPTIONS = video_frames.ConversionOptions(short_side=128)


def _read_dir(out_dir):
  """{filename: bytes} of every shard, plus the manifest rows."""
  files = {os.path.basename(p): open(p, 'rb').read()
           for p in sorted(glob.glob(os.path.join(out_dir, '*.tfrecord')))}
  with open(os.path.join(out_dir, 'manifest.jsonl')) as f:
    rows = [json.loads(line) for line in f]
  return files, rows


def _parse_all(out_dir):
  examples = []
  for path in sorted(glob.glob(os.path.join(out_dir, '*.tfrecord'))):
    for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
      examples.append(tf.train.SequenceExample.FromString(raw))
  return examples


@pytest.fixture(scope='module')
def real_conversion(tmp_path_factory):
  """All real test videos plus a missing and a non-video file, converted."""
  root = tmp_path_factory.mktemp('real')
  (root / 'notes.mp4').write_text('not a video')
  rows = ['path,label']
  for name in sorted(REAL_VIDEOS):
    rows.append(f'{real_video(name)},{name.split(".")[0].split("_")[0]}')
  rows += [f'{root / "gone.mp4"},missing', f'{root / "notes.mp4"},bad']
  (root / 'list.csv').write_text('\n'.join(rows) + '\n')
  out = root / 'out'
  result = run_module('tfrecords_tools.convert_videos',
                      f'--input_csv={root / "list.csv"}',
                      f'--output_dir={out}', '--num_shards=3', '--workers=2')
  return str(out), result


def test_every_real_file_gets_the_right_status(real_conversion):
  out, result = real_conversion
  _, rows = _read_dir(out)
  by_name = {os.path.basename(r['path']): r for r in rows}
  for name, expected in REAL_VIDEOS.items():
    assert by_name[name]['status'] == expected['status'], by_name[name]
    assert by_name[name]['frames'] == expected['frames']
  assert by_name['gone.mp4']['status'] == 'missing'
  assert by_name['notes.mp4']['status'] == 'unreadable'
  corrupt = by_name['corrupted.mp4']
  assert 'InvalidDataError' in corrupt['error'] and '28' in corrupt['error']
  assert 'ok=6, missing=1, corrupt=1, too_short=0, unreadable=1' in result.stdout
  assert 'corrupted.mp4' in result.stdout  # failures are listed, not hidden


def test_records_carry_all_keys(real_conversion):
  out, _ = real_conversion
  examples = _parse_all(out)
  assert len(examples) == 6
  labels = open(os.path.join(out, 'label_map.txt')).read().split()
  for ex in examples:
    ctx = ex.context.feature
    jpegs = ex.feature_lists.feature_list[features.IMAGE_KEY].feature
    assert ctx[features.NUM_FRAMES_KEY].int64_list.value[0] == len(jpegs)
    text = ctx[features.LABEL_TEXT_KEY].bytes_list.value[0].decode()
    assert labels[ctx[features.LABEL_INDEX_KEY].int64_list.value[0]] == text
    assert ctx[features.FPS_KEY].float_list.value[0] > 0
    assert ctx[features.END_TIMESTAMP_KEY].int64_list.value[0] > (
        ctx[features.START_TIMESTAMP_KEY].int64_list.value[0])
    assert ctx[features.CLIP_ID_KEY].bytes_list.value[0]
    assert ctx[features.FILENAME_KEY].bytes_list.value[0]
    first = tf.io.decode_jpeg(jpegs[0].bytes_list.value[0])
    assert first.shape[0] == ctx[features.HEIGHT_KEY].int64_list.value[0]
    assert first.shape[1] == ctx[features.WIDTH_KEY].int64_list.value[0]
    assert min(first.shape[:2]) == 256  # default --short_side
    if b'rotated' in ctx[features.FILENAME_KEY].bytes_list.value[0]:
      assert tuple(first.shape[:2]) == (454, 256)  # upright: taller than wide


def test_model_garden_decoder_reads_our_records(real_conversion):
  from official.vision.dataloaders import video_input  # pylint: disable=g-import-not-at-top
  out, _ = real_conversion
  decoder = video_input.Decoder()  # its default keys, unchanged
  paths = sorted(glob.glob(os.path.join(out, '*.tfrecord')))
  seen = 0
  for raw in tf.data.TFRecordDataset(paths).as_numpy_iterator():
    decoded = decoder.decode(tf.constant(raw))
    ours = tf.train.SequenceExample.FromString(raw)
    ctx = ours.context.feature
    assert int(decoded[video_input.LABEL_KEY][0]) == (
        ctx[features.LABEL_INDEX_KEY].int64_list.value[0])
    assert decoded[video_input.IMAGE_KEY].shape[0] == (
        ctx[features.NUM_FRAMES_KEY].int64_list.value[0])
    seen += 1
  assert seen == 6


def test_keep_partial_keeps_the_decoded_frames(tmp_path):
  task = sources.VideoTask('c', real_video('corrupted.mp4'), 'x', 'train')
  strict = video_frames.convert_video(task, OPTIONS)
  assert strict.status == 'corrupt' and not strict.jpegs
  partial = video_frames.convert_video(
      task, video_frames.ConversionOptions(short_side=64,
                                               keep_partial=True))
  assert partial.status == 'ok' and len(partial.jpegs) == 28
  assert 'InvalidDataError' in partial.manifest_row()['error']


def test_too_short(tmp_path):
  task = sources.VideoTask('r', real_video('rotated_90.mov'), 'x', 'train')
  result = video_frames.convert_video(
      task, video_frames.ConversionOptions(short_side=64, min_frames=8))
  assert result.status == 'too_short' and '3 frames' in result.error


def test_label_map_is_sorted_and_stable(synthetic_videos, tmp_path):
  csv_path = os.path.join(synthetic_videos, 'train.csv')
  maps = []
  for run in range(2):
    out = tmp_path / f'run{run}'
    tasks = job.read_tasks(csv_path, synthetic_videos, 'train')
    if run:
      tasks = tasks[::-1]  # input order must not matter
    labels = sources.build_label_map(tasks)
    job.convert(tasks, str(out), labels, OPTIONS, 2)
    maps.append((out / 'label_map.txt').read_text())
  assert maps[0] == maps[1]
  names = maps[0].split()
  assert names == sorted(names) and len(names) == 8


def test_reusing_a_label_map(synthetic_videos, tmp_path):
  label_map = tmp_path / 'labels.txt'
  label_map.write_text('zzz_extra\n' + open(
      os.path.join(synthetic_videos, 'label_map.txt')).read())
  labels = sources.read_label_map(str(label_map))
  tasks = job.read_tasks(
      os.path.join(synthetic_videos, 'val.csv'), synthetic_videos, 'val')
  result = job.convert(tasks, str(tmp_path / 'out'), labels,
                                  OPTIONS, 1)
  for ex in _parse_all(str(tmp_path / 'out')):
    ctx = ex.context.feature
    text = ctx[features.LABEL_TEXT_KEY].bytes_list.value[0].decode()
    assert ctx[features.LABEL_INDEX_KEY].int64_list.value[0] == (
        labels.index(text))
  assert result['counts']['ok'] == len(tasks)
  with pytest.raises(sources.SourceError, match='not in the label map'):
    sources.assign_labels(tasks, ['only_this'])


def test_kinetics_csv_trimmed_untrimmed_and_missing(tmp_path):
  root = tmp_path / 'videos' / 'abseiling'
  root.mkdir(parents=True)
  arm = real_video('kinetics_arm_wrestling.mp4')
  os.symlink(arm, root / 'trimmedAAAA_000010_000020.mp4')
  os.symlink(arm, tmp_path / 'videos' / 'untrimmedBB.mp4')
  csv_path = tmp_path / 'train.csv'
  csv_path.write_text(
      'label,youtube_id,time_start,time_end,split,is_cc\n'
      'abseiling,trimmedAAAA,10,20,train,0\n'
      '"air drumming",untrimmedBB,2,5,train,0\n'
      'abseiling,notdownloaded,0,10,val,0\n')
  tasks = job.read_tasks(str(csv_path), str(tmp_path / 'videos'),
                                    'ignored')
  by_id = {t.clip_id: t for t in tasks}
  assert by_id['trimmedAAAA_000010_000020'].start_s is None
  assert by_id['untrimmedBB_000002_000005'].start_s == 2.0
  assert by_id['notdownloaded_000000_000010'].path is None
  out = tmp_path / 'out'
  result = job.convert(tasks, str(out), sources.build_label_map(
      tasks), OPTIONS, 1)
  rows = {r['id']: r for r in result['rows']}
  assert rows['trimmedAAAA_000010_000020']['frames'] == 280
  assert abs(rows['untrimmedBB_000002_000005']['frames'] - 84) <= 1
  assert rows['notdownloaded_000000_000010']['status'] == 'missing'
  assert sorted(os.path.basename(p) for p in glob.glob(str(out / '*.tfrecord'))
               ) == ['train-00000-of-00001.tfrecord',
                     'val-00000-of-00001.tfrecord']
  assert (out / 'label_map.txt').read_text() == 'abseiling\nair drumming\n'


def test_folder_tree_input(synthetic_videos, tmp_path):
  tasks = job.read_tasks(None, os.path.join(synthetic_videos,
                                                       'videos'), 'train')
  assert len(tasks) == 32
  assert {t.label for t in tasks} == set(
      open(os.path.join(synthetic_videos, 'label_map.txt')).read().split())
  assert all(t.clip_id.startswith(t.label + '/') for t in tasks)


def test_beam_and_multiprocessing_write_the_same_files(synthetic_videos,
                                                       tmp_path):
  pytest.importorskip('apache_beam')
  tasks = job.read_tasks(
      os.path.join(synthetic_videos, 'train.csv'), synthetic_videos, 'train')
  labels = sources.build_label_map(tasks)
  job.convert(tasks, str(tmp_path / 'local'), labels, OPTIONS, 3,
                         runner='local', workers=2)
  job.convert(tasks, str(tmp_path / 'beam'), labels, OPTIONS, 3,
                         runner='beam')
  local_files, local_rows = _read_dir(str(tmp_path / 'local'))
  beam_files, beam_rows = _read_dir(str(tmp_path / 'beam'))
  assert len(local_files) == 3
  assert local_files == beam_files  # the same examples, byte for byte
  assert local_rows == beam_rows


def test_sigkill_then_rerun_gives_identical_shards(synthetic_videos,
                                                   tmp_path):
  args = [f'--input_csv={os.path.join(synthetic_videos, "train.csv")}',
          f'--video_root={synthetic_videos}', '--num_shards=6',
          '--short_side=64']
  run_module('tfrecords_tools.convert_videos',
             f'--output_dir={tmp_path / "clean"}', '--workers=2', *args)
  killed = tmp_path / 'killed'
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=REPO_ROOT)
  proc = subprocess.Popen(
      [sys.executable, '-m', 'tfrecords_tools.convert_videos',
       f'--output_dir={killed}', '--workers=1', *args],
      cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
      stderr=subprocess.DEVNULL)
  deadline = time.time() + 120
  pieces = killed / shards.MANIFEST_DIR
  while time.time() < deadline and proc.poll() is None:
    if pieces.is_dir() and any(not p.name.count('.tmp-')
                               for p in pieces.iterdir()):
      break
    time.sleep(0.02)
  assert proc.poll() is None, 'finished before it could be killed'
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  partial = sorted(p.name for p in killed.glob('*.tfrecord'))
  assert 0 < len(partial) < 6, partial  # really interrupted mid-run
  result = run_module('tfrecords_tools.convert_videos',
                      f'--output_dir={killed}', '--workers=2', *args)
  assert 'ok=24' in result.stdout
  assert _read_dir(str(killed)) == _read_dir(str(tmp_path / 'clean'))
  assert not [p for p in os.listdir(killed) if '.tmp-' in p]


def test_rerun_with_other_options_is_refused(synthetic_videos, tmp_path):
  args = [f'--input_csv={os.path.join(synthetic_videos, "val.csv")}',
          f'--video_root={synthetic_videos}', f'--output_dir={tmp_path}']
  run_module('tfrecords_tools.convert_videos', *args, '--short_side=64')
  again = run_module('tfrecords_tools.convert_videos', *args,
                     '--short_side=32', check=False)
  assert again.returncode == 2 and 'short_side' in again.stderr


def test_exit_codes(tmp_path):
  missing_csv = run_module('tfrecords_tools.convert_videos',
                           f'--input_csv={tmp_path / "nope.csv"}',
                           f'--output_dir={tmp_path / "o1"}', check=False)
  assert missing_csv.returncode == 2 and 'nope.csv' in missing_csv.stderr
  (tmp_path / 'bad.csv').write_text(f'path,label\n{tmp_path / "x.mp4"},a\n')
  nothing = run_module('tfrecords_tools.convert_videos',
                       f'--input_csv={tmp_path / "bad.csv"}',
                       f'--output_dir={tmp_path / "o2"}', check=False)
  assert nothing.returncode == 1
  assert 'missing=1' in nothing.stdout and 'no video was converted' in (
      nothing.stderr)


def test_bad_kinetics_csv_names_the_problem(tmp_path):
  (tmp_path / 'k.csv').write_text('label,youtube_id,time_start\nx,y,1\n')
  with pytest.raises(sources.SourceError, match='time_end'):
    sources.read_kinetics_csv(str(tmp_path / 'k.csv'), str(tmp_path))
  (tmp_path / 'k2.csv').write_text(
      'label,youtube_id,time_start,time_end,split\nx,y,one,2,train\n')
  with pytest.raises(sources.SourceError, match='k2.csv:2'):
    sources.read_kinetics_csv(str(tmp_path / 'k2.csv'), str(tmp_path))
