"""The converter under users' mistakes: reruns never keep stale output,
headers are never data, one job per folder, one-line errors."""

import glob
import json
import os
import shutil

import pytest

from tests.conftest import run_module
from tfrecords_tools.conversion import folder_lock
from tfrecords_tools.conversion import job
from tfrecords_tools.conversion import rerun
from tfrecords_tools.conversion import sources
from tfrecords_tools.conversion import video_frames

OPTIONS = video_frames.ConversionOptions(short_side=0)


def _listing(path, rows, header='path,label'):
  path.write_text((header + '\n' if header else '') +
                  ''.join(f'{p},{l}\n' for p, l in rows))
  return str(path)


def _videos(synthetic_videos, split='train'):
  """(relative path, label) of the synthetic set's videos of `split`."""
  with open(os.path.join(synthetic_videos, f'{split}.csv')) as f:
    lines = [l.strip().split(',') for l in f if l.strip()][1:]
  return [(p, l) for p, l in lines]


def _convert(csv_path, root, out, labels, overwrite=False):
  tasks = job.read_tasks(csv_path, root, 'train')
  return job.convert(tasks, str(out), labels, OPTIONS, 2,
                     overwrite=overwrite)


def _snapshot(out):
  return {os.path.relpath(p, out): open(p, 'rb').read()
          for p in sorted(glob.glob(f'{out}/**', recursive=True))
          if os.path.isfile(p)}


@pytest.fixture
def labels(synthetic_videos):
  return sources.read_label_map(os.path.join(synthetic_videos,
                                             'label_map.txt'))


def test_other_videos_of_the_same_count_are_refused_then_overwritten(
    synthetic_videos, labels, tmp_path):
  videos = _videos(synthetic_videos)
  first = _listing(tmp_path / 'a.csv', videos[:4])
  second = _listing(tmp_path / 'b.csv', videos[:2] + videos[4:6])
  out = tmp_path / 'out'
  _convert(first, synthetic_videos, out, labels)
  before = _snapshot(out)
  with pytest.raises(rerun.RerunError) as error:
    _convert(second, synthetic_videos, out, labels)
  message = str(error.value)
  assert 'other inputs' in message and '--overwrite' in message
  assert 'train-00001-of-00002.tfrecord: other videos (2 new' in message
  assert _snapshot(out) == before  # a refusal changes nothing
  result = _convert(second, synthetic_videos, out, labels, overwrite=True)
  assert result['counts']['ok'] == 4
  after = _snapshot(out)
  # The unchanged first shard was kept as it was; the second rewritten.
  assert after['train-00000-of-00002.tfrecord'] == before[
      'train-00000-of-00002.tfrecord']
  assert after['train-00001-of-00002.tfrecord'] != before[
      'train-00001-of-00002.tfrecord']
  ids = [json.loads(l)['id'] for l in open(out / 'manifest.jsonl')]
  assert ids == sorted(p for p, _ in videos[:2] + videos[4:6])


def test_failed_rows_are_retried_after_fixing_the_video_root(
    synthetic_videos, labels, tmp_path):
  rows = _videos(synthetic_videos)[:4]
  listing = _listing(tmp_path / 'a.csv', rows)
  out = tmp_path / 'out'
  wrong = _convert(listing, str(tmp_path / 'no_such_root'), out, labels)
  assert wrong['counts']['missing'] == 4
  fixed = _convert(listing, synthetic_videos, out, labels)
  assert fixed['counts']['ok'] == 4 and fixed['counts']['missing'] == 0
  paths = {json.loads(l)['path'] for l in open(out / 'manifest.jsonl')}
  assert all(p.startswith(synthetic_videos) for p in paths)


def test_a_file_fixed_in_place_converts_on_the_next_run(
    synthetic_videos, labels, tmp_path):
  root = tmp_path / 'videos'
  shutil.copytree(synthetic_videos, root)
  rows = _videos(synthetic_videos)[:2]
  broken = root / rows[1][0]
  good = broken.read_bytes()
  broken.write_bytes(b'not a video')
  listing = _listing(tmp_path / 'a.csv', rows)
  out = tmp_path / 'out'
  first = _convert(listing, str(root), out, labels)
  assert first['counts']['unreadable'] == 1
  broken.write_bytes(good)
  again = _convert(listing, str(root), out, labels)
  assert again['counts']['ok'] == 2
  # And a rerun of the finished conversion resumes to identical bytes.
  before = _snapshot(out)
  _convert(listing, str(root), out, labels)
  assert _snapshot(out) == before


@pytest.mark.parametrize('header', ['filename,class', 'video,category',
                                    'Path,Label', 'file_name,action'])
def test_csv_headers_are_recognised_by_name(synthetic_videos, tmp_path,
                                            header):
  rows = _videos(synthetic_videos)[:3]
  listing = _listing(tmp_path / 'a.csv', rows, header)
  tasks = job.read_tasks(listing, synthetic_videos, 'train')
  assert [t.clip_id for t in tasks] == [p for p, _ in rows]
  assert 'class' not in sources.build_label_map(tasks)


def test_an_unknown_first_row_stops_and_the_flag_decides(synthetic_videos,
                                                         tmp_path):
  rows = _videos(synthetic_videos)[:3]
  listing = _listing(tmp_path / 'a.csv', rows, 'clip,kind')
  with pytest.raises(sources.SourceError, match=r'a.csv:1: first row'):
    job.read_tasks(listing, synthetic_videos, 'train')
  tasks = job.read_tasks(listing, synthetic_videos, 'train', 'yes')
  assert len(tasks) == 3
  # A header-less CSV: the first row is a video, kept.
  bare = _listing(tmp_path / 'b.csv', rows, header=None)
  assert len(job.read_tasks(bare, synthetic_videos, 'train')) == 3
  # A video whose name has no extension but that exists is data.
  assert len(job.read_tasks(bare, synthetic_videos, 'train', 'no')) == 3


def test_a_second_job_into_the_same_folder_is_refused(synthetic_videos,
                                                      labels, tmp_path):
  listing = _listing(tmp_path / 'a.csv', _videos(synthetic_videos)[:2])
  out = tmp_path / 'out'
  out.mkdir()
  with folder_lock.Lock(str(out)):  # a running job: this process, alive
    with pytest.raises(rerun.RerunError, match='being converted by another '
                       r'job \(pid \d+ on this host'):
      _convert(listing, synthetic_videos, out, labels)
  assert not (out / folder_lock.LOCK_FILE).exists()  # released
  # A lock left by a process that is gone is taken over.
  (out / folder_lock.LOCK_FILE).write_text(json.dumps(
      {'host': os.uname().nodename, 'pid': 2 ** 22 + 17, 'started': 0}))
  assert _convert(listing, synthetic_videos, out, labels)['counts']['ok'] == 2
  # Another host's lock cannot be checked: refused, naming how to remove it.
  (out / folder_lock.LOCK_FILE).write_text(json.dumps(
      {'host': 'worker-7', 'pid': 1, 'started': 0}))
  with pytest.raises(rerun.RerunError, match="host 'worker-7'.*delete"):
    _convert(listing, synthetic_videos, out, labels)


def test_command_line_errors_are_one_line(synthetic_videos, tmp_path):
  listing = _listing(tmp_path / 'a.csv', _videos(synthetic_videos)[:2])
  blocker = tmp_path / 'a_file'
  blocker.write_text('x')
  result = run_module('tfrecords_tools.convert_videos',
                      f'--input_csv={listing}',
                      f'--video_root={synthetic_videos}',
                      f'--output_dir={blocker}/out', check=False)
  assert result.returncode == 2
  assert 'cannot be created' in result.stderr and 'Traceback' not in (
      result.stderr)
  bad_deadline = run_module('tfrecords_tools.convert_videos',
                            f'--input_csv={listing}',
                            f'--video_root={synthetic_videos}',
                            f'--output_dir={tmp_path}/never',
                            '--deadline=soon', check=False)
  assert bad_deadline.returncode != 0
  assert "--deadline='soon': expected 'auto'" in bad_deadline.stderr
  assert 'Traceback' not in bad_deadline.stderr
  assert not (tmp_path / 'never').exists()
  out = tmp_path / 'out'
  run_module('tfrecords_tools.convert_videos', f'--input_csv={listing}',
             f'--video_root={synthetic_videos}', f'--output_dir={out}',
             '--short_side=0')
  other = _listing(tmp_path / 'b.csv', _videos(synthetic_videos)[2:4])
  refused = run_module('tfrecords_tools.convert_videos',
                       f'--input_csv={other}',
                       f'--video_root={synthetic_videos}',
                       f'--output_dir={out}', '--short_side=0', check=False)
  assert refused.returncode == 2
  lines = [l for l in refused.stderr.splitlines()
           if l.startswith('convert_videos: error:')]
  assert len(lines) == 1 and '--overwrite' in lines[0]
  assert 'Traceback' not in refused.stderr


def test_beam_counts_what_it_converted(synthetic_videos, labels, tmp_path):
  pytest.importorskip('apache_beam')
  from tfrecords_tools.conversion import beam_runner  # pylint: disable=g-import-not-at-top
  from tfrecords_tools.conversion import shards  # pylint: disable=g-import-not-at-top
  videos = _videos(synthetic_videos)
  rows = videos[:3] + [('missing.mp4', videos[0][1])]
  listing = _listing(tmp_path / 'a.csv', rows)
  tasks = sources.assign_labels(job.read_tasks(listing, synthetic_videos,
                                               'train'), labels)
  specs = shards.plan_shards(tasks, 2)
  counters = beam_runner.run(specs, [0, 1], str(tmp_path / 'out'), OPTIONS,
                             [])
  assert counters == {'tasks': 4, 'ok': 3, 'missing': 1}


def test_streamed_records_are_what_protobuf_and_tf_write(tmp_path):
  # The shard writer serialises a video's SequenceExample from its spill
  # file and frames it itself: the bytes must be protobuf's deterministic
  # serialisation, framed as tf.io.TFRecordWriter frames it.
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from cvrl.data import features  # pylint: disable=g-import-not-at-top
  from tfrecords_tools.conversion import records  # pylint: disable=g-import-not-at-top
  from tfrecords_tools.conversion import shards  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  jpegs = [bytes(rng.integers(0, 256, n, np.uint8)) for n in
           (0, 1, 127, 128, 300, 20_000)]
  context = {features.CLIP_ID_KEY: shards.bytes_feature([b'a/b.mp4']),
             features.NUM_FRAMES_KEY: shards.int64_feature([6]),
             features.FPS_KEY: shards.float_feature([25.0])}
  want = tf.train.SequenceExample(
      context=tf.train.Features(feature=context),
      feature_lists=tf.train.FeatureLists(feature_list={
          features.IMAGE_KEY: tf.train.FeatureList(feature=[
              shards.bytes_feature([j]) for j in jpegs])})
  ).SerializeToString(deterministic=True)
  store = records.Frames()
  order = [store.add(j) for j in jpegs] + [2]  # a repeated frame
  want_repeated = tf.train.SequenceExample.FromString(want)
  want_repeated.feature_lists.feature_list[features.IMAGE_KEY].feature.add(
  ).bytes_list.value.append(jpegs[2])
  clip = records.Clip(store, order)
  streamed = records.clip_record(context, clip.sizes(), clip.read)
  assert shards.serialize_clip(context, jpegs) == want
  reference = str(tmp_path / 'reference.tfrecord')
  with tf.io.TFRecordWriter(reference) as writer:
    writer.write(want)
    writer.write(want_repeated.SerializeToString(deterministic=True))
  ours = records.RecordFile(str(tmp_path / 'ours.tfrecord'))
  ours.write(want)
  ours.write(streamed)
  ours.close()
  assert (tmp_path / 'ours.tfrecord').read_bytes() == (
      tmp_path / 'reference.tfrecord').read_bytes()
  clip.close()
  assert not os.path.exists(store.path)
