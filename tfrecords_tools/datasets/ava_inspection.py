"""What `inspect_tfrecords --ava` reports on `convert_ava` records.

On top of the video checks of `inspection` (frames, sizes, rates, --verify):
keyframes, ground-truth boxes and proposals per keyframe, the action
histogram (names from the label map), and problems (a box outside [0, 1]
or empty, an action without a box, a keyframe index outside the clip),
each with shard and record index. `draw_keyframe` writes one keyframe
as a PNG with its ground-truth boxes (green, with actions) and proposals
(yellow; dashed-looking thin lines under the score threshold).
"""

import collections
import dataclasses
import statistics
from typing import Dict, List, Optional

import numpy as np
from PIL import Image
from PIL import ImageDraw
import tensorflow as tf

from cvrl import files
from cvrl.data import features
from tfrecords_tools.datasets import inspection


@dataclasses.dataclass
class AvaReport:
  video: inspection.Report = dataclasses.field(
      default_factory=inspection.Report)
  boxes: List[int] = dataclasses.field(default_factory=list)
  proposals: List[int] = dataclasses.field(default_factory=list)
  actions: collections.Counter = dataclasses.field(
      default_factory=collections.Counter)
  movies: set = dataclasses.field(default_factory=set)

  @property
  def errors(self) -> List[str]:
    return self.video.errors

  @property
  def shards(self) -> int:
    return self.video.shards

  @shards.setter
  def shards(self, value: int) -> None:
    self.video.shards = value

  def format(self, names: Optional[Dict[int, str]] = None) -> str:
    names = names or {}
    lines = [self.video.format(unit='keyframes', labels=False, errors=False)]
    lines.append(f'{len(self.movies)} movies')

    def spread(values, what):
      if values:
        lines.append(f'{what} per keyframe: min {min(values)}, median '
                     f'{statistics.median(values):g}, max {max(values)}; '
                     f'total {sum(values)}')
    spread(self.boxes, 'ground-truth boxes')
    spread(self.proposals, 'proposals')
    lines.append(f'boxes per action ({len(self.actions)} actions):')
    lines.extend(f'  {a} {names.get(a, "?")}: {n}'
                 for a, n in sorted(self.actions.items()))
    if self.errors:
      lines.append(f'{len(self.errors)} ERRORS:')
      lines.extend(f'  {e}' for e in self.errors)
    return '\n'.join(lines)


def _floats(ctx, key):
  return list(ctx.feature[key].float_list.value) if key in ctx.feature else []


def _ints(ctx, key):
  return list(ctx.feature[key].int64_list.value) if key in ctx.feature else []


def boxes_of(ctx, prefix: str) -> List[tuple]:
  """(xmin, ymin, xmax, ymax) per box of a record's context."""
  return list(zip(*(_floats(ctx, f'{prefix}/{c}')
                    for c in features.BOX_COORDINATES)))


def inspect_record(serialized: bytes, where: str, report: AvaReport,
                   verify: bool) -> None:
  example = inspection.inspect_record(serialized, where, report.video,
                                      verify)
  if example is None:
    return  # reported by inspect_record
  ctx = example.context
  gt = boxes_of(ctx, features.BOX_PREFIX)
  proposals = boxes_of(ctx, features.PROPOSAL_PREFIX)
  report.boxes.append(len(gt))
  report.proposals.append(len(proposals))
  media = ctx.feature[features.MEDIA_ID_KEY].bytes_list.value
  report.movies.add(media[0] if media else b'')
  for kind, boxes in (('box', gt), ('proposal', proposals)):
    for i, box in enumerate(boxes):
      if not all(0 <= v <= 1 for v in box) or box[2] <= box[0] or (
          box[3] <= box[1]):
        report.errors.append(f'{where}: {kind} {i} {box} is outside [0, 1] '
                             'or empty')
  actions = _ints(ctx, features.BOX_LABEL_INDEX_KEY)
  owners = _ints(ctx, features.BOX_LABEL_BOX_KEY)
  if len(actions) != len(owners) or any(not 0 <= o < len(gt) for o in owners):
    report.errors.append(f'{where}: action/box pairs do not match the '
                         f'{len(gt)} boxes')
  report.actions.update(actions)
  index = _ints(ctx, features.KEYFRAME_INDEX_KEY)
  frames = len(example.feature_lists.feature_list[features.IMAGE_KEY].feature)
  if not index or not 0 <= index[0] < frames:
    report.errors.append(f'{where}: keyframe index {index} outside the '
                         f'{frames} frames')


def inspect_files(files: List[str], verify: bool) -> AvaReport:
  return inspection.inspect_files(files, verify, AvaReport(), inspect_record)


def draw_keyframe(serialized: bytes, path: str,
                  names: Optional[Dict[int, str]] = None,
                  score_threshold: float = 0.8, scale: int = 4) -> str:
  """Writes the record's keyframe with its boxes as a PNG; returns its key."""
  names = names or {}
  example = tf.train.SequenceExample.FromString(serialized)
  ctx = example.context
  frames = example.feature_lists.feature_list[features.IMAGE_KEY].feature
  index = _ints(ctx, features.KEYFRAME_INDEX_KEY)[0]
  image = Image.fromarray(
      tf.io.decode_jpeg(frames[index].bytes_list.value[0]).numpy())
  image = image.resize((image.width * scale, image.height * scale),
                       Image.NEAREST)
  draw = ImageDraw.Draw(image)
  size = np.array([image.width, image.height] * 2)
  scores = _floats(ctx, features.PROPOSAL_SCORE_KEY)
  for box, score in zip(boxes_of(ctx, features.PROPOSAL_PREFIX), scores):
    draw.rectangle(list(np.array(box) * size), outline=(255, 220, 0),
                   width=2 if score >= score_threshold else 1)
  actions = _ints(ctx, features.BOX_LABEL_INDEX_KEY)
  owners = _ints(ctx, features.BOX_LABEL_BOX_KEY)
  for i, box in enumerate(boxes_of(ctx, features.BOX_PREFIX)):
    xy = list(np.array(box) * size)
    draw.rectangle(xy, outline=(0, 255, 0), width=2)
    text = ', '.join(names.get(a, str(a)) for a, o in zip(actions, owners)
                     if o == i)
    draw.text((xy[0] + 2, xy[1] + 2), text, fill=(0, 255, 0))
  with files.open_file(path, 'wb') as f:  # local or gs://
    image.save(f, format='PNG')
  return ctx.feature[features.CLIP_ID_KEY].bytes_list.value[0].decode()
