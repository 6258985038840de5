"""UCF-101 and HMDB-51 official splits, read from the datasets' own files.

UCF-101 (`ucfTrainTestlist/`):
  classInd.txt        '1 ApplyEyeMakeup'             (1-based class index)
  trainlist0N.txt     'ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1'
  testlist0N.txt      'ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi'
HMDB-51 (`testTrainMulti_7030_splits/`):
  <class>_test_splitN.txt   'April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1'
                            (1 = train, 2 = test, 0 = not used in split N)

Both give VideoTasks of splits 'train' and 'test' plus the label map (UCF:
classInd order; HMDB: sorted class names). Files as distributed have CRLF
line endings and trailing spaces; both are accepted. A video is looked up at
video_root/<class>/<file> first, then by file stem anywhere under
video_root; one not found is kept with path None, so the converter reports it
as missing instead of dropping it.
"""

import os
import re
from typing import Dict, List, Optional, Tuple

import tensorflow as tf

from cvrl import files
from tfrecords_tools.conversion import sources

DATASETS = ('ucf101', 'hmdb51')
_HMDB_FILE = re.compile(r'^(?P<label>.+)_test_split(?P<split>\d+)\.txt$')
_HMDB_SPLIT_NAMES = {'1': 'train', '2': 'test'}


def _lines(path: str) -> List[Tuple[int, str]]:
  if not files.is_file(path):
    raise sources.SourceError(f'{path}: split file not found')
  with files.open_file(path) as f:
    return [(n, line.strip()) for n, line in enumerate(f, start=1)
            if line.strip()]


class _Locator:
  """Finds a listed video: video_root/<relative path>, else by its file
  stem anywhere under video_root (the converter's one-walk index, built
  only if some video is not where the list says)."""

  def __init__(self, video_root: str):
    self._root = video_root
    self._by_stem: Optional[Dict[str, str]] = None

  def __call__(self, relative: str) -> Optional[str]:
    direct = os.path.join(self._root, relative)
    if files.is_file(direct):
      return direct
    if self._by_stem is None:
      self._by_stem = sources.index_video_root(self._root)
    return self._by_stem.get(os.path.splitext(os.path.basename(relative))[0])


def read_ucf101(split_dir: str, video_root: str,
                split_number: int) -> Tuple[List[sources.VideoTask], List[str]]:
  """Train and test tasks of UCF-101 split N, and the 101 class names."""
  labels = []
  class_file = os.path.join(split_dir, 'classInd.txt')
  for line_no, line in _lines(class_file):
    parts = line.split()
    if len(parts) != 2 or not parts[0].isdigit():
      raise sources.SourceError(
          f'{class_file}:{line_no}: expected "<index> <class>", got {line!r}')
    if int(parts[0]) != len(labels) + 1:
      raise sources.SourceError(
          f'{class_file}:{line_no}: class index {parts[0]}, expected '
          f'{len(labels) + 1} (indices must run 1, 2, ...)')
    labels.append(parts[1])
  # Folder names in the lists differ in case from classInd for some classes
  # (HandStandPushups / HandstandPushups): match case-insensitively.
  by_lower = {name.lower(): name for name in labels}
  locate = _Locator(video_root)
  tasks = []
  for split in ('train', 'test'):
    list_file = os.path.join(split_dir, f'{split}list0{split_number}.txt')
    for line_no, line in _lines(list_file):
      parts = line.split()
      relative = parts[0].replace('\\', '/')
      folder = relative.split('/')[0] if '/' in relative else ''
      if len(parts) == 2:
        if not parts[1].isdigit() or not 1 <= int(parts[1]) <= len(labels):
          raise sources.SourceError(
              f'{list_file}:{line_no}: class index {parts[1]!r} is not in '
              f'1..{len(labels)} of {class_file}')
        label = labels[int(parts[1]) - 1]
      elif len(parts) == 1 and folder.lower() in by_lower:
        label = by_lower[folder.lower()]
      else:
        raise sources.SourceError(
            f'{list_file}:{line_no}: expected "<class>/<video> [index]" with '
            f'a class of {class_file}, got {line!r}')
      tasks.append(sources.VideoTask(relative, locate(relative), label, split))
  return tasks, labels


def read_hmdb51(split_dir: str, video_root: str,
                split_number: int) -> Tuple[List[sources.VideoTask], List[str]]:
  """Train and test tasks of HMDB-51 split N, and the sorted class names."""
  if not tf.io.gfile.isdir(split_dir):
    raise sources.SourceError(f'{split_dir}: split folder not found')
  split_lists = {}
  for name in sorted(tf.io.gfile.listdir(split_dir)):
    match = _HMDB_FILE.match(name)
    if match and match.group('split') == str(split_number):
      split_lists[match.group('label')] = os.path.join(split_dir, name)
  if not split_lists:
    raise sources.SourceError(
        f'{split_dir}: no <class>_test_split{split_number}.txt files')
  locate = _Locator(video_root)
  tasks = []
  for label, path in sorted(split_lists.items()):
    for line_no, line in _lines(path):
      parts = line.split()
      if len(parts) != 2 or parts[1] not in ('0', '1', '2'):
        raise sources.SourceError(
            f'{path}:{line_no}: expected "<video> <0|1|2>", got {line!r}')
      if parts[1] == '0':
        continue  # not part of this split
      relative = f'{label}/{parts[0]}'
      tasks.append(sources.VideoTask(relative, locate(relative), label,
                                     _HMDB_SPLIT_NAMES[parts[1]]))
  return tasks, sorted(split_lists)


def read_split(dataset: str, split_dir: str, video_root: str,
               split_number: int) -> Tuple[List[sources.VideoTask], List[str]]:
  """Dispatch by dataset name ('ucf101' or 'hmdb51')."""
  if split_number not in (1, 2, 3):
    raise sources.SourceError(f'split number {split_number}: expected 1, 2 '
                              'or 3')
  readers = {'ucf101': read_ucf101, 'hmdb51': read_hmdb51}
  if dataset not in readers:
    raise sources.SourceError(f'dataset {dataset!r}: expected one of '
                              f'{DATASETS}')
  return readers[dataset](split_dir, video_root, split_number)
