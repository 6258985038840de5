"""TFRecord files written a piece at a time, so a long video never sits in
memory: its JPEGs go to a local spill file as they are encoded (`Frames`),
and its SequenceExample is serialised straight from there into the shard
(`clip_record`, `RecordFile`).

`clip_record` lays out the bytes exactly as protobuf's deterministic
serialisation of the SequenceExample does (tested: identical), and
`RecordFile` frames records exactly as `tf.io.TFRecordWriter` does (length,
masked CRC-32C of the length, data, masked CRC-32C of the data; tested:
identical files), so shards are byte-for-byte what they were.
"""

import os
import struct
import tempfile
from typing import Callable, Iterable, Iterator, List, Sequence, Tuple, Union

import google_crc32c
import tensorflow as tf

from cvrl.data import features

# A record: its bytes, or (length, a function giving its chunks in order).
Record = Union[bytes, Tuple[int, Callable[[], Iterator[bytes]]]]


def _masked_crc(crc: int) -> int:
  """TFRecord's masked CRC-32C (tensorflow/core/lib/hash/crc32c.h)."""
  return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & (
      0xFFFFFFFF)


class RecordFile:
  """Appends TFRecord-framed records to a file (any tf.io.gfile path)."""

  def __init__(self, path: str):
    self._file = tf.io.gfile.GFile(path, 'wb')
    self._file.write(b'')  # GFile creates the file on its first write

  def write(self, record: Record) -> None:
    if isinstance(record, (bytes, bytearray)):
      length, chunks = len(record), lambda: iter((bytes(record),))
    else:
      length, chunks = record
    header = struct.pack('<Q', length)
    self._file.write(header)
    self._file.write(struct.pack('<I', _masked_crc(
        google_crc32c.value(header))))
    crc, written = 0, 0
    for chunk in chunks():
      crc = google_crc32c.extend(crc, chunk)
      written += len(chunk)
      self._file.write(chunk)
    if written != length:
      raise ValueError(f'record of {written} bytes, {length} announced')
    self._file.write(struct.pack('<I', _masked_crc(crc)))

  def close(self) -> None:
    self._file.close()


def _varint(value: int) -> bytes:
  out = bytearray()
  while True:
    low, value = value & 0x7F, value >> 7
    out.append(low | (0x80 if value else 0))
    if not value:
      return bytes(out)


def _field(tag: int, length: int) -> bytes:
  """A length-delimited field's key and length (tag: field << 3 | 2)."""
  return bytes([tag]) + _varint(length)


_FIRST, _SECOND = 0x0A, 0x12  # fields 1 and 2, length-delimited


def clip_record(context: dict, sizes: Sequence[int],
                jpegs: Callable[[], Iterable[bytes]]) -> Tuple[int, Callable]:
  """(length, chunks) of a SequenceExample holding `context` and one JPEG
  per frame under IMAGE_KEY; `jpegs()` yields the frames (of `sizes`
  bytes) in order, when the record is written."""
  ctx = tf.train.Features(feature=context).SerializeToString(
      deterministic=True)
  heads, frames_length = [], 0
  for size in sizes:
    bytes_list = 1 + len(_varint(size)) + size      # BytesList.value
    feature = 1 + len(_varint(bytes_list)) + bytes_list  # Feature.bytes_list
    head = (_field(_FIRST, feature) + _field(_FIRST, bytes_list) +
            _field(_FIRST, size))
    heads.append(head)
    frames_length += len(head) + size
  key = features.IMAGE_KEY.encode('utf-8')
  entry = _field(_FIRST, len(key)) + key + _field(_SECOND, frames_length)
  lists = _field(_FIRST, len(entry) + frames_length) + entry
  head = (_field(_FIRST, len(ctx)) + ctx +
          _field(_SECOND, len(lists) + frames_length) + lists)

  def chunks():
    yield head
    count = 0
    for frame_head, jpeg in zip(heads, jpegs()):
      yield frame_head
      yield jpeg
      count += 1
    if count != len(heads):
      raise ValueError(f'{count} frames, {len(heads)} announced')
  return len(head) + frames_length, chunks


class Frames:
  """JPEG frames spilled to a local file as they are encoded.

  `add` returns the frame's index; the same index may be listed twice
  (a low-rate source repeats a frame). Picklable (a path and spans), for
  worker processes on the same machine; `load` reads them into memory
  (Beam, across machines); `close` deletes the file.
  """

  def __init__(self):
    handle, self.path = tempfile.mkstemp(prefix='cvrl-frames-')
    os.close(handle)
    self._spans: List[Tuple[int, int]] = []
    self._end = 0

  def add(self, jpeg: bytes) -> int:
    with tf.io.gfile.GFile(self.path, 'ab') as f:
      f.write(jpeg)
    self._spans.append((self._end, len(jpeg)))
    self._end += len(jpeg)
    return len(self._spans) - 1

  def sizes(self, order: Sequence[int]) -> List[int]:
    return [self._spans[i][1] for i in order]

  def read(self, order: Sequence[int]) -> Iterator[bytes]:
    with tf.io.gfile.GFile(self.path, 'rb') as f:
      for i in order:
        start, size = self._spans[i]
        f.seek(start)
        yield f.read(size)

  def close(self) -> None:
    if tf.io.gfile.exists(self.path):
      tf.io.gfile.remove(self.path)


class Clip:
  """A clip's frames in a `Frames` spill file: the frame indices in order.
  len() is the number of frames; `load()` the JPEG bytes, in memory."""

  def __init__(self, store: Frames, order: Sequence[int]):
    self.store = store
    self.order = list(order)

  def __len__(self) -> int:
    return len(self.order)

  def __bool__(self) -> bool:
    return bool(self.order)

  def sizes(self) -> List[int]:
    return self.store.sizes(self.order)

  def read(self) -> Iterator[bytes]:
    return self.store.read(self.order)

  def load(self) -> List[bytes]:
    jpegs = list(self.read())
    self.store.close()
    return jpegs

  def close(self) -> None:
    self.store.close()
