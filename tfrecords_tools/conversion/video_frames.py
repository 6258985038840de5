"""The per-video function that both runners (multiprocessing, Beam) call.

decode (PyAV) -> JPEG encode (Pillow) -> a `VideoResult` holding the encoded
frames and one manifest row. Pure Python and picklable, no TensorFlow, so that
worker processes start fast. Bad input never raises out of here: it becomes a
status in the manifest row.
"""

import dataclasses
import io
from typing import Dict, List, Optional, Sequence

from PIL import Image

from cvrl import files
from tfrecords_tools.conversion import records
from tfrecords_tools.conversion import sources
from tfrecords_tools.conversion import decoder as vd


@dataclasses.dataclass(frozen=True)
class ConversionOptions:
  fps: float = 0.0
  short_side: int = 256
  jpeg_quality: int = 90
  min_frames: int = 1
  keep_partial: bool = False


@dataclasses.dataclass
class VideoResult:
  """Encoded frames (empty unless status is ok) and the manifest row."""
  task: sources.VideoTask
  status: str
  jpegs: List[bytes]
  fps: float = 0.0
  height: int = 0
  width: int = 0
  start_us: int = 0
  end_us: int = 0
  error: str = ''

  def manifest_row(self) -> Dict:
    return {
        'id': self.task.clip_id,
        'path': self.task.path,
        'split': self.task.split,
        'label': self.task.label,
        'status': self.status,
        'frames': len(self.jpegs),
        'error': self.error,
    }


def encode_jpeg(rgb, quality: int) -> bytes:
  buf = io.BytesIO()
  # 4:2:0 subsampling and no optimisation pass: the libjpeg defaults, which
  # are deterministic, so reruns give byte-identical shards.
  Image.fromarray(rgb).save(buf, format='JPEG', quality=quality)
  return buf.getvalue()


def _failed(task, status, error, frames=0) -> VideoResult:
  if frames:
    error = f'{error} (after {frames} decoded frames)'
  return VideoResult(task=task, status=status, jpegs=[], error=error)


def failed_result(task, status: str, error: str) -> VideoResult:
  """The result of a video that could not be converted (`status`)."""
  return _failed(task, status, error)


def convert_video(task: sources.VideoTask,
                  options: ConversionOptions) -> VideoResult:
  """Converts one video; never raises for bad input."""
  if task.path is None:
    return _failed(task, vd.MISSING, 'no file found for this clip id')
  if not files.is_file(task.path):
    return _failed(task, vd.MISSING, f'file not found: {task.path}')
  decode_options = vd.DecodeOptions(fps=options.fps,
                                    short_side=options.short_side,
                                    start_s=task.start_s, end_s=task.end_s)
  # Frames become JPEGs as they are decoded and go to a local spill file:
  # a worker holds one raw frame at a time, whatever the video's length,
  # and the shard writer streams the record from the file.
  store = records.Frames()
  try:
    decoded = vd.decode_video(
        task.path, decode_options,
        lambda rgb: store.add(encode_jpeg(rgb, options.jpeg_quality)))
  except vd.UnreadableVideoError as e:
    store.close()
    return _failed(task, vd.UNREADABLE, str(e))
  except Exception as e:  # pylint: disable=broad-except
    # A decoder bug on one file must not stop a 600k-video job.
    store.close()
    return _failed(task, vd.UNREADABLE, f'{type(e).__name__}: {e}')
  result = _result(task, decoded, options, records.Clip(store,
                                                        decoded.frames))
  if result.status != vd.OK:
    store.close()
  return result


def _result(task, decoded, options, clip) -> VideoResult:
  """The status of a decoded video, its frames (`clip`) if it is kept."""
  if decoded.error and not (options.keep_partial and decoded.frames):
    return _failed(task, vd.CORRUPT, decoded.error, len(decoded.frames))
  if len(decoded.frames) < max(1, options.min_frames):
    window = ''
    if task.start_s is not None:
      window = f' in window [{task.start_s}, {task.end_s}] s'
    return _failed(task, vd.TOO_SHORT,
                   f'{len(decoded.frames)} frames{window}, need at least '
                   f'{max(1, options.min_frames)}')
  height, width = decoded.height, decoded.width
  jpegs = clip
  error = ''
  if decoded.error:  # kept partial
    error = f'kept {len(jpegs)} frames before: {decoded.error}'
  return VideoResult(task=task, status=vd.OK, jpegs=jpegs, fps=decoded.fps,
                     height=height, width=width, start_us=decoded.start_us,
                     end_us=decoded.end_us, error=error)


def summarize(rows: List[Dict],
              statuses: Sequence[str] = vd.STATUSES) -> Dict[str, int]:
  """Counts per status, every status present (zeros included)."""
  counts = {status: 0 for status in statuses}
  for row in rows:
    counts[row['status']] += 1
  return counts


def format_summary(counts: Dict[str, int],
                   frames: Optional[int] = None) -> str:
  parts = [f'{status}={counts[status]}' for status in vd.STATUSES]
  text = f'{sum(counts.values())} videos: ' + ', '.join(parts)
  if frames is not None:
    text += f'; {frames} frames written'
  return text
