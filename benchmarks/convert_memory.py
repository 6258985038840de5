r"""Peak memory of converting one video, short against long.

  .venv/bin/python benchmarks/convert_memory.py [--long_s=180] [--short_s=10]

Writes two 640 x 360 videos at 25 fps (moving noise texture, MPEG-4) of
--short_s and --long_s seconds, converts each with `convert_videos` (short
side 256, one worker) in its own process, and prints each process's peak
RSS, the growth from short to long, and what the raw frames of the long
video alone would take (what the converter held before it encoded frames as
they were decoded).
"""

import argparse
import fractions
import os
import subprocess
import sys
import tempfile

import av
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_video(path: str, seconds: float, width=640, height=360, fps=25):
  rng = np.random.default_rng(0)
  texture = rng.integers(0, 255, (height, width * 2, 3), np.uint8)
  with av.open(path, mode='w') as container:
    stream = container.add_stream('mpeg4', rate=fractions.Fraction(fps, 1))
    stream.width, stream.height = width, height
    stream.pix_fmt = 'yuv420p'
    stream.bit_rate = 4_000_000
    for k in range(int(seconds * fps)):
      shift = (4 * k) % width
      frame = av.VideoFrame.from_ndarray(
          np.ascontiguousarray(texture[:, shift:shift + width]), 'rgb24')
      for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)


def peak_rss_mb(video: str, out_dir: str) -> float:
  """Peak RSS (MB) of a convert_videos process converting `video`."""
  listing = os.path.join(out_dir, 'list.csv')
  with open(listing, 'w', encoding='utf-8') as f:
    f.write(f'path,label\n{video},a\n')
  code = (
      'import resource, runpy, sys\n'
      'sys.argv = sys.argv[1:]\n'
      'try:\n'
      '  runpy.run_module("tfrecords_tools.convert_videos", '
      'run_name="__main__")\n'
      'except SystemExit:\n'
      '  pass\n'
      'print("PEAK_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n')
  result = subprocess.run(
      [sys.executable, '-c', code, 'convert_videos',
       f'--input_csv={listing}', '--video_root=/', '--split=train',
       f'--output_dir={out_dir}/records', '--short_side=256',
       '--num_shards=1', '--workers=1'],
      cwd=REPO, capture_output=True, text=True, check=False,
      env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL='3'))
  for line in result.stdout.splitlines():
    if line.startswith('PEAK_KB'):
      return int(line.split()[1]) / 1024
  raise RuntimeError(result.stdout[-2000:] + result.stderr[-2000:])


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--short_s', type=float, default=10)
  parser.add_argument('--long_s', type=float, default=180)
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as tmp:
    rows = []
    for seconds in (args.short_s, args.long_s):
      folder = os.path.join(tmp, f'{seconds:g}s')
      os.makedirs(folder)
      video = os.path.join(folder, 'video.mp4')
      write_video(video, seconds)
      rows.append((seconds, peak_rss_mb(video, folder)))
  (short_s, short_mb), (long_s, long_mb) = rows
  raw_mb = long_s * 25 * 455 * 256 * 3 / 2**20
  print(f'peak RSS converting a {short_s:g} s 640x360 video: {short_mb:.0f} MB')
  print(f'peak RSS converting a {long_s:g} s 640x360 video: {long_mb:.0f} MB')
  print(f'growth: {long_mb - short_mb:+.0f} MB ({long_mb / short_mb:.2f}x) '
        f'for {long_s / short_s:.0f}x the length; the long video\'s raw '
        f'frames at short side 256 alone: {raw_mb:.0f} MB')


if __name__ == '__main__':
  main()
