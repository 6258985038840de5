"""AVA v2.2's annotation files, read and checked row by row.

The formats, as AVA ships them (and PySlowFast's proposals):
  label map (.pbtxt)     label { name: "walk" label_id: 14 label_type: ... }
                         or item { name: "walk" id: 14 } (the 60-class list)
  boxes CSV              video_id,timestamp,x1,y1,x2,y2,action_id,person_id
                         (coordinates normalised to [0, 1], one row per
                         box and action: a box with two actions is two rows)
  proposals CSV          video_id,timestamp,x1,y1,x2,y2,action_id,score
                         (PySlowFast's detector boxes; action_id is empty or
                         -1; a 9th column is read as a person id before it)
  excluded timestamps    video_id,timestamp

A keyframe is (video_id, integer second); its key is 'video_id,%04d' as in
the official evaluator. Bad rows never vanish: every one is returned as a
`Problem` naming file, line and what was expected, and counted by callers.
"""

import csv
import dataclasses
import re
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

from cvrl import files

Keyframe = Tuple[str, int]


class AnnotationError(ValueError):
  """A file that cannot be read at all (missing, empty label map...)."""


@dataclasses.dataclass(frozen=True)
class Problem:
  path: str
  line: int
  message: str

  def __str__(self) -> str:
    return f'{self.path}:{self.line}: {self.message}'


@dataclasses.dataclass(frozen=True)
class BoxRow:
  """One row of a boxes or proposals CSV; box = (x1, y1, x2, y2)."""
  video_id: str
  timestamp: int
  box: Tuple[float, float, float, float]
  action_id: int = -1
  person_id: int = -1
  score: float = 1.0
  line: int = 0

  @property
  def keyframe(self) -> Keyframe:
    return (self.video_id, self.timestamp)


def keyframe_key(video_id: str, timestamp: int) -> str:
  """The official evaluator's image key."""
  return f'{video_id},{int(timestamp):04d}'


_BLOCK = re.compile(r'(?:item|label)\s*\{([^}]*)\}', re.S)
_NAME = re.compile(r'name:\s*"((?:[^"\\]|\\.)*)"')
_ID = re.compile(r'\b(?:label_)?id:\s*(-?\d+)')


def read_label_map(path: str) -> Dict[int, str]:
  """{id: name} from a label map in either format every command accepts:
  an AVA / TF object-detection .pbtxt (`item {name: ".." id: N}` or
  `label {name: ".." label_id: N}` blocks), or a text file with one class
  name a line (`label_map.txt`, as convert_videos writes), ids 1, 2, ...
  by line."""
  try:
    with files.open_file(path) as f:
      text = f.read()
  except files.FILE_ERRORS as e:
    raise AnnotationError(f'{path}: cannot read the label map: {e}') from e
  if '{' not in text:
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
      raise AnnotationError(f'{path}: empty label map; expected one class '
                            'name a line, or "item {...}" blocks')
    if len(set(names)) != len(names):
      raise AnnotationError(f'{path}: label map has duplicate classes')
    return {index + 1: name for index, name in enumerate(names)}
  labels: Dict[int, str] = {}
  for block in _BLOCK.finditer(text):
    line = text.count('\n', 0, block.start()) + 1
    name, ident = _NAME.search(block.group(1)), _ID.search(block.group(1))
    if not name or not ident:
      raise AnnotationError(
          f'{path}:{line}: a label block without name: "..." and id: N '
          '(or label_id: N)')
    action_id = int(ident.group(1))
    if action_id in labels:
      raise AnnotationError(f'{path}:{line}: action id {action_id} appears '
                            'twice')
    labels[action_id] = name.group(1)
  if not labels:
    raise AnnotationError(f'{path}: no "label {{...}}" or "item {{...}}" '
                          'blocks; expected an AVA label map')
  return labels


def read_class_names(path: str) -> List[str]:
  """Class names by label index (0, 1, ...) from a label map in either
  format (`read_label_map`): a .pbtxt's classes in the order of their ids."""
  labels = read_label_map(path)
  return [labels[key] for key in sorted(labels)]


def write_label_map(path: str, labels: Dict[int, str],
                    style: str = 'label') -> None:
  """Writes a label map as AVA does: style 'label' (the 80-class file) or
  'item' (the 60 evaluated classes)."""
  key = 'label_id' if style == 'label' else 'id'
  with files.open_file(path, 'w') as f:
    for action_id in sorted(labels):
      extra = '  label_type: PERSON_MOVEMENT\n' if style == 'label' else ''
      f.write(f'{style} {{\n  name: "{labels[action_id]}"\n'
              f'  {key}: {action_id}\n{extra}}}\n')


def _rows(path: str) -> Iterable[Tuple[int, List[str]]]:
  try:
    with files.open_file(path) as f:
      for line, row in enumerate(csv.reader(f), start=1):
        if row and any(c.strip() for c in row):
          yield line, [c.strip() for c in row]
  except files.FILE_ERRORS as e:
    raise AnnotationError(f'{path}: cannot read: {e}') from e


def _timestamp(text: str) -> int:
  value = float(text)
  if value != int(value):
    raise ValueError(f'timestamp {text!r} is not a whole second')
  return int(value)


def read_boxes(path: str, *, proposals: bool = False,
               label_ids: Optional[Set[int]] = None
               ) -> Tuple[List[BoxRow], List[Problem]]:
  """Rows of a ground-truth boxes CSV (or a proposals CSV) and the problems.

  A row is a problem, not a box, when it has the wrong number of columns,
  a non-number, a coordinate outside [0, 1], x2 <= x1 or y2 <= y1, or (ground
  truth) an action id not in `label_ids`.
  """
  expected = ('video_id,timestamp,x1,y1,x2,y2,action_id,score' if proposals
              else 'video_id,timestamp,x1,y1,x2,y2,action_id,person_id')
  rows, problems = [], []
  for line, row in _rows(path):
    def bad(message, line=line):
      problems.append(Problem(path, line, message))
    if len(row) not in ((8, 9) if proposals else (7, 8)):
      bad(f'{len(row)} columns, expected {expected}')
      continue
    try:
      timestamp = _timestamp(row[1])
      box = tuple(float(v) for v in row[2:6])
      action = int(float(row[6])) if row[6] not in ('', '-1') else -1
      if proposals:
        score = float(row[-1])
        person = int(float(row[7])) if len(row) == 9 and row[7] else -1
      else:
        score = 1.0
        person = int(float(row[7])) if len(row) == 8 and row[7] else -1
    except ValueError as e:
      bad(f'cannot parse {row}: {e}; expected {expected}')
      continue
    if not row[0]:
      bad('empty video_id')
      continue
    if not all(0.0 <= v <= 1.0 for v in box):
      bad(f'box {box} outside [0, 1]; expected normalised x1,y1,x2,y2')
      continue
    if box[2] <= box[0] or box[3] <= box[1]:
      bad(f'box {box} is empty (expected x1 < x2 and y1 < y2)')
      continue
    if not proposals:
      if action == -1:
        bad('ground-truth row without an action id')
        continue
      if label_ids is not None and action not in label_ids:
        bad(f'action id {action} is not in the label map')
        continue
    rows.append(BoxRow(row[0], timestamp, box, action, person, score, line))
  return rows, problems


def read_excluded(path: Optional[str]) -> Tuple[Set[Keyframe], List[Problem]]:
  """Keyframes listed in an excluded-timestamps CSV, and bad rows."""
  if not path:
    return set(), []
  keys, problems = set(), []
  for line, row in _rows(path):
    try:
      if len(row) != 2:
        raise ValueError(f'{len(row)} columns')
      keys.add((row[0], _timestamp(row[1])))
    except ValueError as e:
      problems.append(Problem(path, line,
                              f'{e}; expected video_id,timestamp'))
  return keys, problems


def group_boxes(rows: Sequence[BoxRow]) -> Dict[Keyframe, List[Tuple]]:
  """{keyframe: [(box, sorted action ids, person id, score)]}: ground-truth
  rows of the same box (same coordinates and person) become one box with
  several actions, in first-seen order."""
  grouped: Dict[Keyframe, Dict[Tuple, List]] = {}
  for row in rows:
    boxes = grouped.setdefault(row.keyframe, {})
    entry = boxes.setdefault((row.box, row.person_id),
                             [row.box, set(), row.person_id, row.score])
    if row.action_id >= 0:
      entry[1].add(row.action_id)
  return {key: [(b, tuple(sorted(a)), p, s) for b, a, p, s in boxes.values()]
          for key, boxes in grouped.items()}


def write_detections(path: str, detections: Iterable[Tuple]) -> int:
  """Writes (video_id, timestamp, (x1, y1, x2, y2), action_id, score) rows
  in the official evaluator's detection CSV layout; returns the count."""
  count = 0
  with files.open_file(path, 'w') as f:
    for video_id, timestamp, box, action_id, score in detections:
      x1, y1, x2, y2 = box
      f.write(f'{video_id},{int(timestamp):04d},{x1:.3f},{y1:.3f},{x2:.3f},'
              f'{y2:.3f},{int(action_id)},{score:.6f}\n')
      count += 1
  return count
