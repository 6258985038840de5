r"""Conversion throughput on the real test videos.

  .venv/bin/python benchmarks/convert_throughput.py [--repeats=6]

Links the decodable videos of ../shared/testdata/videos under distinct names
(repeated to a few dozen), converts them at short side 256 with our converter
on 1 worker and on all cores, and does the same work with a plain
single-process loop (decode, resize, JPEG-encode, write) for comparison.
Prints videos/s and frames/s of each and the ratios, and first what the
pool's spawned workers cost to start (a new interpreter importing what
converting imports) against forked ones, measured before this process
decodes anything (after it has, a forked worker may hang in FFmpeg's
swscale: tfrecords_tools/conversion/worker_pool.py).
"""

import argparse
import io
import multiprocessing
import os
import shutil
import sys
import tempfile
import time

import av
import pebble
from PIL import Image
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfrecords_tools.conversion import job  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfrecords_tools.conversion import sources  # pylint: disable=wrong-import-position
from tfrecords_tools.conversion import video_frames  # pylint: disable=wrong-import-position
from tfrecords_tools.conversion import worker_pool  # pylint: disable=wrong-import-position

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VIDEOS = os.path.join(os.path.dirname(REPO), 'shared', 'testdata', 'videos')
DECODABLE = ('kinetics_arm_wrestling.mp4', 'mmaction2_test.mp4',
             'mmaction2_test.avi', 'kinetics_flipping_pancake.mkv',
             'rotated_90.mov', 'unordered_pts.mov')


def plain_loop(paths, out_path, short_side=256, quality=90):
  """The obvious single-process converter: no pool, no sharding, no checks."""
  frames_written = 0
  with tf.io.TFRecordWriter(out_path) as writer:
    for path in paths:
      jpegs = []
      with av.open(path) as container:
        for frame in container.decode(video=0):
          image = frame.to_image()
          scale = short_side / min(image.size)
          image = image.resize((round(image.size[0] * scale),
                                round(image.size[1] * scale)),
                               Image.BILINEAR)
          buf = io.BytesIO()
          image.save(buf, format='JPEG', quality=quality)
          jpegs.append(buf.getvalue())
      example = tf.train.SequenceExample()
      frame_list = example.feature_lists.feature_list['image/encoded']
      for jpeg in jpegs:
        frame_list.feature.add().bytes_list.value.append(jpeg)
      writer.write(example.SerializeToString())
      frames_written += len(jpegs)
  return frames_written


_READY_AFTER_S = 0.5


def _ready(_):
  """A worker's answer once it can convert (the task is unpickled after
  the worker has imported what converting needs), held long enough that
  each worker takes one."""
  time.sleep(_READY_AFTER_S)
  return os.getpid()


def pool_start_seconds(workers: int, method: str) -> float:
  """Seconds from creating a pool to every worker having answered, less
  the task's own time."""
  start = time.perf_counter()
  pool = pebble.ProcessPool(max_workers=workers,
                            context=multiprocessing.get_context(method))
  try:
    pids = {f.result() for f in [pool.schedule(_ready, args=(i,))
                                 for i in range(workers)]}
  finally:
    pool.stop()
    pool.join()
  assert len(pids) == workers, f'{len(pids)} of {workers} workers answered'
  return time.perf_counter() - start - _READY_AFTER_S


def repeated_video_tasks(work: str, repeats: int, videos_dir: str = VIDEOS):
  """Links each decodable test video `repeats` times under distinct names.

  Returns conversion tasks (label 'x', split 'train'), one per link.
  """
  missing = [name for name in DECODABLE
             if not os.path.isfile(os.path.join(videos_dir, name))]
  if missing:
    # A link to a missing file converts to nothing, and a benchmark on no
    # records would wait forever for its first batch.
    raise FileNotFoundError(
        f'test videos {missing} not found in {videos_dir}: the benchmarks '
        'read ../shared/testdata/videos beside the checkout (or pass '
        '--videos_dir)')
  tasks = []
  os.makedirs(os.path.join(work, 'videos'), exist_ok=True)
  for r in range(repeats):
    for name in DECODABLE:
      link = os.path.join(work, 'videos', f'{r:02d}_{name}')
      os.symlink(os.path.join(videos_dir, name), link)
      tasks.append(sources.VideoTask(os.path.basename(link), link, 'x',
                                     'train'))
  return tasks


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--repeats', type=int, default=6,
                      help='copies of each decodable test video')
  parser.add_argument('--videos_dir', default=VIDEOS)
  args = parser.parse_args()
  work = tempfile.mkdtemp(prefix='convert_bench_')
  try:
    tasks = repeated_video_tasks(work, args.repeats, args.videos_dir)
    paths = [t.path for t in tasks]
    options = video_frames.ConversionOptions(short_side=256)
    cores = os.cpu_count() or 1
    for method in ('fork', worker_pool.START_METHOD):
      print(f'pool of {cores} workers, {method}: every worker ready after '
            f'{pool_start_seconds(cores, method):.2f} s')
    rows = []
    start = time.perf_counter()
    frames = plain_loop(paths, os.path.join(work, 'plain.tfrecord'))
    rows.append(('plain single-process loop', time.perf_counter() - start,
                 frames))
    for workers in sorted({1, cores}):
      out = os.path.join(work, f'ours_{workers}')
      start = time.perf_counter()
      result = job.convert(tasks, out, ['x'], options,
                                      num_shards=4, workers=workers)
      rows.append((f'convert_videos --workers={workers}',
                   time.perf_counter() - start, result['frames']))
    print(f'{len(paths)} videos ({frames} frames) at short side 256, '
          f'{cores} cores')
    print(f'{"":34s} {"seconds":>8s} {"videos/s":>9s} {"frames/s":>9s} '
          f'{"vs plain":>8s}')
    base = rows[0][1]
    for name, seconds, n_frames in rows:
      print(f'{name:34s} {seconds:8.2f} {len(paths) / seconds:9.2f} '
            f'{n_frames / seconds:9.1f} {base / seconds:7.2f}x')
    assert all(r[2] == frames for r in rows), 'frame counts differ'
  finally:
    shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
  main()
