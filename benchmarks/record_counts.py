r"""What counting a converted dataset costs at job start: the converter's
record index against header scans, locally, in time, bytes read and calls.

  python benchmarks/record_counts.py [--shards=1024] [--records=40]
      [--record_kb=128] [--work_dir=/tmp/cvrl_record_counts]

Writes --shards TFRecord files of --records records of --record_kb KiB
each and their record index (`cvrl.data.record_index`, what the converters
write), then counts them three ways, each in a fresh cache:

  index            `dataset_size.count_files`: one index read per folder,
                   one stat per file
  header scan      `video_sources.count_records` on every file: 8 bytes
                   read per record (records made by other tools)
  GFile scan       the header scan as it was: `tf.io.gfile.GFile` seek +
                   read(8) per record, which refills GFile's 512 KiB
                   buffer at every seek

Bytes are the process's `rchar` (Linux /proc/self/io); calls are file
opens and reads (tf.io.gfile's and the header scan's reader) and stats. On gs://
each call is a request, and each out-of-buffer read may pull TensorFlow's
GCS read buffer (64 MiB by default): the calls are what matters there.
"""

import argparse
import os
import shutil
import struct
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

# pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf

from cvrl.data import dataset_size
from cvrl.data import record_index
from cvrl.data import video_sources


def rchar() -> int:
  with open('/proc/self/io') as f:
    return next(int(l.split()[1]) for l in f if l.startswith('rchar'))


class Calls:
  """Counts tf.io.gfile opens, reads and stats while installed."""

  def __init__(self):
    self.opens = self.reads = self.stats = 0
    self._real = (tf.io.gfile.GFile, tf.io.gfile.stat,
                  video_sources._header_reader)  # pylint: disable=protected-access

  def __enter__(self):
    real_gfile, real_stat, real_reader = self._real
    calls = self

    class Reader:
      """The header scan's reader, its opens and reads counted."""

      def __init__(self, path):
        calls.opens += 1
        self._reader = real_reader(path)

      def seek(self, offset):
        self._reader.seek(offset)

      def read(self, n):
        calls.reads += 1
        return self._reader.read(n)

    class GFile(real_gfile):  # pylint: disable=missing-class-docstring

      def __init__(self, *args, **kwargs):
        calls.opens += 1
        super().__init__(*args, **kwargs)

      def read(self, *args):
        calls.reads += 1
        return super().read(*args)

    def stat(path):
      calls.stats += 1
      return real_stat(path)
    tf.io.gfile.GFile, tf.io.gfile.stat = GFile, stat
    video_sources._header_reader = Reader  # pylint: disable=protected-access
    return self

  def __exit__(self, *exc):
    (tf.io.gfile.GFile, tf.io.gfile.stat,
     video_sources._header_reader) = self._real  # pylint: disable=protected-access


def gfile_scan(path: str) -> int:
  """The header scan before: GFile seek + read(8) per record."""
  count, offset = 0, 0
  with tf.io.gfile.GFile(path, 'rb') as f:
    size = f.size()
    while offset < size:
      f.seek(offset)
      header = f.read(8)
      if len(header) < 8:
        break
      offset += 16 + struct.unpack('<Q', header)[0]
      count += 1
  return count


def write_shards(folder, shards, records, size):
  os.makedirs(folder, exist_ok=True)
  paths = []
  payload = os.urandom(size)
  for i in range(shards):
    path = os.path.join(folder, f'train-{i:05d}-of-{shards:05d}.tfrecord')
    with tf.io.TFRecordWriter(path) as writer:
      for _ in range(records):
        writer.write(payload)
    paths.append(path)
  record_index.index_folders(paths, {p: records for p in paths})
  return paths


def measure(name, fn, paths, want):
  dataset_size._MEMO.clear()  # pylint: disable=protected-access
  with Calls() as calls:
    before, start = rchar(), time.perf_counter()
    got = fn(paths)
    seconds, read = time.perf_counter() - start, rchar() - before
  assert got == want, (name, got, want)
  return (f'| {name} | {seconds:.2f} | {read:,} | {calls.opens:,} | '
          f'{calls.reads:,} | {calls.stats:,} |')


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--shards', type=int, default=1024)
  parser.add_argument('--records', type=int, default=40)
  parser.add_argument('--record_kb', type=int, default=128)
  parser.add_argument('--work_dir', default='/tmp/cvrl_record_counts')
  args = parser.parse_args()
  folder = os.path.join(args.work_dir, 'records')
  shutil.rmtree(args.work_dir, ignore_errors=True)
  paths = write_shards(folder, args.shards, args.records,
                       args.record_kb << 10)
  want = args.shards * args.records
  data = sum(os.path.getsize(p) for p in paths)
  print(f'{args.shards} shards x {args.records} records of '
        f'{args.record_kb} KiB ({data / 2**30:.2f} GiB), local disk')
  print('| count by | seconds | bytes read | file opens | reads | stats |')
  print('|---|---:|---:|---:|---:|---:|')
  os.environ['CVRL_CACHE_DIR'] = os.path.join(args.work_dir, 'cache_index')
  print(measure('record index (`dataset_size.count_files`)',
                lambda p: sum(dataset_size.count_files(p)), paths, want))
  print(measure('header scan, 8 bytes a record (`count_records`)',
                lambda p: sum(map(video_sources.count_records, p)), paths,
                want))
  print(measure('header scan through GFile (before)',
                lambda p: sum(map(gfile_scan, p)), paths, want))


if __name__ == '__main__':
  main()
