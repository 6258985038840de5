"""Summaries and checks of converted video TFRecords (`inspect_tfrecords`).

Videos per label, frames per video, frame rates (their spread, and a warning
when they differ: clips are counted in frames), frame sizes; with `verify`
every JPEG decoded and checked against the stored size and frame count. A
truncated file, an unparsable record or a bad frame becomes an error line
naming the shard and the record.
"""

import collections
import dataclasses
import statistics
from typing import Dict, List, Optional

import tensorflow as tf

from cvrl.data import features


@dataclasses.dataclass
class Report:
  shards: int = 0
  videos: int = 0
  labels: collections.Counter = dataclasses.field(
      default_factory=collections.Counter)
  frames: List[int] = dataclasses.field(default_factory=list)
  fps: collections.Counter = dataclasses.field(
      default_factory=collections.Counter)
  sizes: collections.Counter = dataclasses.field(
      default_factory=collections.Counter)
  errors: List[str] = dataclasses.field(default_factory=list)

  def format(self, unit: str = 'videos', labels: bool = True,
             errors: bool = True) -> str:
    """The report; AVA's keyframe report reuses it for the video part
    (unit 'keyframes', its own actions and errors)."""
    lines = [f'{self.shards} shards, {self.videos} {unit}']
    if self.frames:
      lines.append(
          f'frames per {unit[:-1]}: min {min(self.frames)}, median '
          f'{statistics.median(self.frames):g}, max {max(self.frames)}; '
          f'total {sum(self.frames)}')
    lines.extend(self._frame_rates())
    lines.append('frame sizes (HxW): ' + ', '.join(
        f'{h}x{w} ({n})' for (h, w), n in self.sizes.most_common(10)))
    if labels:
      lines.append(f'videos per label ({len(self.labels)} labels):')
      lines.extend(f'  {label}: {n}'
                   for label, n in sorted(self.labels.items()))
    if errors and self.errors:
      lines.append(f'{len(self.errors)} ERRORS:')
      lines.extend(f'  {e}' for e in self.errors)
    return '\n'.join(lines)


  def _frame_rates(self) -> List[str]:
    """The rates' spread; a warning when the videos' rates differ."""
    known = {fps: n for fps, n in self.fps.items() if fps >= 0}
    common = sorted(sorted(self.fps.items(), key=lambda kv: -kv[1])[:10])
    more = len(self.fps) - len(common)
    lines = ['fps: ' + ', '.join(
        (f'{fps:g}' if fps >= 0 else 'unknown') + f' ({n})'
        for fps, n in common) + (f', ... {more} more rates' if more else '')]
    if len(known) > 1:
      rates = sorted(r for fps, n in known.items() for r in [fps] * n)
      lines.append(
          f'fps spread: min {rates[0]:g}, median '
          f'{statistics.median(rates):g}, max {rates[-1]:g} over '
          f'{len(known)} rates: WARNING mixed frame rates. Clip length and '
          'the gap between the two clips are counted in frames, so they '
          'cover different durations in different videos; convert with '
          '--fps (the paper\'s Kinetics: --fps=25).')
    return lines


def _context_value(context: Dict, key: str, kind: str):
  feature = context.feature.get(key) if key in context.feature else None
  if feature is None:
    return None
  values = getattr(feature, kind).value
  return values[0] if values else None


def _check_frames(jpegs, height, width, where: str) -> List[str]:
  errors = []
  for i, jpeg in enumerate(jpegs):
    try:
      image = tf.io.decode_jpeg(jpeg, channels=3)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as e:
      errors.append(f'{where}: frame {i} does not decode: '
                    f'{e.message.splitlines()[0]}')
      continue
    if (height, width) != tuple(image.shape[:2]):
      errors.append(f'{where}: frame {i} is {image.shape[0]}x{image.shape[1]},'
                    f' {features.HEIGHT_KEY}/{features.WIDTH_KEY} say '
                    f'{height}x{width}')
  return errors


def inspect_record(serialized: bytes, where: str, report: Report,
                   verify: bool) -> Optional[tf.train.SequenceExample]:
  """Adds one record to `report`; problems go to `report.errors`. Returns
  the parsed record (None if it is not a SequenceExample) for callers that
  look further into it (`ava_inspection`)."""
  try:
    example = tf.train.SequenceExample.FromString(serialized)
  except Exception as e:  # pylint: disable=broad-except
    report.errors.append(f'{where}: not a tf.train.SequenceExample: {e}')
    return None
  lists = example.feature_lists.feature_list
  if features.IMAGE_KEY not in lists:
    report.errors.append(f'{where}: no sequence feature {features.IMAGE_KEY}')
    return example
  jpegs = [f.bytes_list.value[0] for f in lists[features.IMAGE_KEY].feature
           if f.bytes_list.value]
  ctx = example.context
  label = _context_value(ctx, features.LABEL_TEXT_KEY, 'bytes_list')
  if label is None:
    label = str(_context_value(ctx, features.LABEL_INDEX_KEY, 'int64_list'))
  else:
    label = label.decode('utf-8', 'replace')
  height = _context_value(ctx, features.HEIGHT_KEY, 'int64_list')
  width = _context_value(ctx, features.WIDTH_KEY, 'int64_list')
  num_frames = _context_value(ctx, features.NUM_FRAMES_KEY, 'int64_list')
  fps = _context_value(ctx, features.FPS_KEY, 'float_list')
  report.videos += 1
  report.labels[label] += 1
  report.frames.append(len(jpegs))
  report.fps[round(fps, 2) if fps is not None else -1] += 1
  report.sizes[(height, width)] += 1
  if num_frames is not None and num_frames != len(jpegs):
    report.errors.append(f'{where}: {features.NUM_FRAMES_KEY}={num_frames} '
                         f'but {len(jpegs)} frames stored')
  if verify:
    report.errors.extend(_check_frames(jpegs, height, width, where))
  return example


def inspect_files(files: List[str], verify: bool, report=None,
                  inspect=None):
  """Every record of `files` through `inspect` (default `inspect_record`)
  into `report` (default a new `Report`); an unreadable file is an error
  naming it and the record where reading stopped."""
  report = report if report is not None else Report()
  inspect = inspect or inspect_record
  for path in files:
    report.shards += 1
    index = 0
    try:
      for serialized in tf.data.TFRecordDataset(path).as_numpy_iterator():
        inspect(serialized, f'{path} record {index}', report, verify)
        index += 1
    except (tf.errors.DataLossError, tf.errors.OutOfRangeError) as e:
      report.errors.append(
          f'{path} record {index}: truncated or corrupt file: '
          f'{e.message.splitlines()[0]}')
  return report
