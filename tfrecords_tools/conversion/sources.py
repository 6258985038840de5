"""Turning the user's description of a dataset into a sorted list of videos.

Three input forms give the same `VideoTask` records:
- a Kinetics annotation CSV (label,youtube_id,time_start,time_end,split[,is_cc])
  plus a video root searched for `{id}_{start:06d}_{end:06d}.{ext}` (already
  trimmed) or `{id}.{ext}` (untrimmed, cut to [start, end]);
- a generic CSV `path,label` (UCF-101, HMDB-51, custom);
- a folder tree `root/<class_name>/<video file>`.

Everything is sorted by (split, clip id), so the output never depends on file
system order or hashing.
"""

import csv
import dataclasses
import os
from typing import Dict, Iterable, List, Optional, Sequence

import tensorflow as tf

from cvrl import files
from cvrl.data import ava_files
from cvrl.data import features

VIDEO_EXTENSIONS = ('.mp4', '.mkv', '.webm', '.avi', '.mov', '.m4v', '.flv',
                    '.mpg', '.mpeg', '.wmv', '.3gp', '.ogv')

KINETICS_COLUMNS = ('label', 'youtube_id', 'time_start', 'time_end', 'split')


class SourceError(ValueError):
  """A usage error in the input description (bad CSV, unknown label...)."""


@dataclasses.dataclass(frozen=True)
class VideoTask:
  """One video to convert. `path` is None when no file was found for it."""
  clip_id: str
  path: Optional[str]
  label: str
  split: str
  start_s: Optional[float] = None
  end_s: Optional[float] = None
  label_index: int = features.NO_LABEL

  def sort_key(self):
    return (self.split, self.clip_id, self.path or '')


def _is_video(name: str) -> bool:
  return os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


def index_video_root(video_root: str) -> Dict[str, str]:
  """Maps a file's stem to its path, for every video under `video_root`.

  One walk over the tree, so any layout works (flat, per class, per split).
  When a stem appears twice, the lexicographically first path wins, so the
  result does not depend on walk order.
  """
  index: Dict[str, str] = {}
  # tf.io.gfile: the root may be on gs:// as well as local.
  for dirpath, dirnames, filenames in tf.io.gfile.walk(video_root):
    dirnames.sort()
    for name in sorted(filenames):
      if _is_video(name):
        stem = os.path.splitext(name)[0]
        path = os.path.join(dirpath, name)
        if stem not in index or path < index[stem]:
          index[stem] = path
  return index


def _read_csv_rows(csv_path: str) -> List[List[str]]:
  with files.open_file(csv_path) as f:
    return [row for row in csv.reader(f) if row and any(c.strip() for c in row)]


def read_kinetics_csv(csv_path: str, video_root: str) -> List[VideoTask]:
  """Tasks from a Kinetics annotation CSV; missing files get path None."""
  rows = _read_csv_rows(csv_path)
  if not rows:
    raise SourceError(f'{csv_path}: empty annotation file')
  header = [c.strip() for c in rows[0]]
  missing = [c for c in KINETICS_COLUMNS if c not in header]
  # Kinetics test CSVs have no label column; accept them with empty labels.
  if missing and missing != ['label']:
    raise SourceError(
        f'{csv_path}: header {header} lacks columns {missing}; expected '
        f'{",".join(KINETICS_COLUMNS)}[,is_cc]')
  col = {name: header.index(name) for name in header}
  index = index_video_root(video_root)
  tasks = []
  for line_no, row in enumerate(rows[1:], start=2):
    try:
      yid = row[col['youtube_id']].strip()
      start = int(float(row[col['time_start']]))
      end = int(float(row[col['time_end']]))
      split = row[col['split']].strip()
      label = row[col['label']].strip() if 'label' in col else ''
    except (IndexError, ValueError) as e:
      raise SourceError(
          f'{csv_path}:{line_no}: cannot parse row {row}: {e}') from e
    clip_id = f'{yid}_{start:06d}_{end:06d}'
    if clip_id in index:
      tasks.append(VideoTask(clip_id, index[clip_id], label, split))
    elif yid in index:
      tasks.append(VideoTask(clip_id, index[yid], label, split,
                             start_s=float(start), end_s=float(end)))
    else:
      tasks.append(VideoTask(clip_id, None, label, split))
  return tasks


# Header names of a `path,label` CSV's two columns (lower case).
PATH_COLUMNS = ('path', 'filename', 'file_name', 'file', 'video', 'video_path',
                'video_id', 'name')
LABEL_COLUMNS = ('label', 'class', 'class_name', 'category', 'action')
CSV_HEADER = ('auto', 'yes', 'no')


def _is_header(row: Sequence[str]) -> bool:
  names = [c.strip().lower() for c in row[:2]]
  return (len(names) == 2 and names[0] in PATH_COLUMNS
          and names[1] in LABEL_COLUMNS)


def read_path_label_csv(csv_path: str, video_root: str, split: str,
                        header: str = 'auto') -> List[VideoTask]:
  """Tasks from `path,label` rows; relative paths are under `video_root`.

  header: 'yes' (the first row names the columns), 'no' (it is a video),
  or 'auto': a first row whose path is not a video file name and whose two
  fields are known column names (`PATH_COLUMNS`, `LABEL_COLUMNS`) is the
  header; a first row that is neither that nor a video stops the job (a
  header must never become a video and a class).
  """
  if header not in CSV_HEADER:
    raise SourceError(f'--csv_header={header!r}: expected one of '
                      f'{CSV_HEADER}')
  rows = _read_csv_rows(csv_path)
  first = 1
  if rows and header == 'yes':
    rows, first = rows[1:], 2
  elif rows and header == 'auto':
    path = rows[0][0].strip()
    if not _is_video(path) and _is_header(rows[0]):
      rows, first = rows[1:], 2
    elif not _is_video(path) and not files.is_file(
        path if os.path.isabs(path) else os.path.join(video_root, path)):
      raise SourceError(
          f'{csv_path}:1: first row {rows[0][:2]} is neither a video (no '
          f'video extension {VIDEO_EXTENSIONS[:4]}..., and no such file) nor '
          f'a header naming a path column {PATH_COLUMNS[:4]}... and a label '
          f'column {LABEL_COLUMNS[:3]}...; give --csv_header=yes or '
          '--csv_header=no')
  tasks = []
  for line_no, row in enumerate(rows, start=first):
    if len(row) < 2:
      raise SourceError(
          f'{csv_path}:{line_no}: expected "path,label", got {row}')
    rel, label = row[0].strip(), row[1].strip()
    path = rel if os.path.isabs(rel) else os.path.join(video_root, rel)
    # The path as written is the id: stems can clash (a.mp4 beside a.avi).
    tasks.append(VideoTask(rel, path, label, split))
  return tasks


def read_folder_tree(root: str, split: str) -> List[VideoTask]:
  """Tasks from `root/<class_name>/<video file>`; other files are ignored."""
  if not tf.io.gfile.isdir(root):
    raise SourceError(f'--video_root {root!r} is not a directory')
  tasks = []
  # Remote file systems list folders with a trailing '/'.
  for label in sorted(n.rstrip('/') for n in tf.io.gfile.listdir(root)):
    class_dir = os.path.join(root, label)
    if not tf.io.gfile.isdir(class_dir):
      continue
    for name in sorted(tf.io.gfile.listdir(class_dir)):
      if _is_video(name):
        tasks.append(VideoTask(f'{label}/{name}', os.path.join(class_dir, name),
                               label, split))
  return tasks


def read_label_map(path: str) -> List[str]:
  """Class names by label index: label_map.txt (one a line) or a .pbtxt
  (classes in the order of their ids), as every command accepts."""
  try:
    return ava_files.read_class_names(path)
  except ava_files.AnnotationError as e:
    raise SourceError(str(e)) from e


def write_label_map(path: str, labels: Sequence[str]) -> None:
  with files.open_file(path, 'w') as f:
    f.write(''.join(f'{label}\n' for label in labels))


def build_label_map(tasks: Iterable[VideoTask]) -> List[str]:
  """Sorted class names; index = position. Empty labels are not classes."""
  return sorted({t.label for t in tasks if t.label})


def assign_labels(tasks: Sequence[VideoTask],
                  labels: Sequence[str]) -> List[VideoTask]:
  """Fills `label_index`, sorts tasks, and checks ids are unique."""
  lookup = {name: i for i, name in enumerate(labels)}
  unknown = sorted({t.label for t in tasks if t.label and t.label not in lookup})
  if unknown:
    raise SourceError(
        f'{len(unknown)} labels are not in the label map, e.g. {unknown[:5]}')
  out = sorted((dataclasses.replace(
      t, label_index=lookup.get(t.label, features.NO_LABEL)) for t in tasks),
               key=VideoTask.sort_key)
  seen = set()
  for t in out:
    if (t.split, t.clip_id) in seen:
      raise SourceError(f'clip id {t.clip_id!r} appears twice in split '
                        f'{t.split!r}; clip ids must be unique')
    seen.add((t.split, t.clip_id))
  return out
