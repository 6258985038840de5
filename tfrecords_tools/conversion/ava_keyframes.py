"""AVA keyframes -> one tf.train.SequenceExample each, on the shard machinery.

Phases: annotations (`cvrl.data.ava_files`) -> keyframes grouped by movie
into chunks of consecutive keyframes (the unit of work: one seek and one
decode of a few seconds, so a worker never holds a 15-minute movie) ->
decode the chunk's window resampled to a fixed rate (`decoder`) -> per
keyframe, the clip of `clip_frames` frames centred on it, JPEG-encoded once
per frame -> records in (split, movie, timestamp) order, with the shards'
resume and manifest guarantees (`shards`, `job.run_plan`).

A record holds the clip (`image/encoded`, frame `clip/keyframe/index` is
the keyframe), the ground-truth boxes with their actions and person ids,
the proposals with scores, and the movie id / timestamp (keys in
`cvrl.data.features`). Keyframes listed in the excluded timestamps get
manifest status `excluded` and no record; keyframes of a movie without a
file, `missing`; a clip window outside the decoded movie, `too_short`.
"""

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import tensorflow as tf

from cvrl import files
from cvrl.data import ava_files
from cvrl.data import features
from tfrecords_tools.conversion import decoder as vd
from tfrecords_tools.conversion import shards
from tfrecords_tools.conversion import sources
from tfrecords_tools.conversion import video_frames

EXCLUDED = 'excluded'
STATUSES = vd.STATUSES + (EXCLUDED,)


@dataclasses.dataclass(frozen=True)
class Keyframe:
  timestamp: int
  # ((x1, y1, x2, y2), action ids, person id) per ground-truth box.
  boxes: Tuple = ()
  # ((x1, y1, x2, y2), score) per proposal, highest score first.
  proposals: Tuple = ()
  excluded: bool = False


@dataclasses.dataclass(frozen=True)
class MovieChunk:
  """Consecutive keyframes of one movie: the unit of work."""
  video_id: str
  path: Optional[str]
  split: str
  keyframes: Tuple[Keyframe, ...]

  @property
  def clip_id(self) -> str:
    return ava_files.keyframe_key(self.video_id, self.keyframes[0].timestamp)

  def sort_key(self):
    return (self.split, self.video_id, self.keyframes[0].timestamp)


@dataclasses.dataclass(frozen=True)
class ClipOptions:
  fps: float = 30.0
  clip_frames: int = 64
  short_side: int = 256
  jpeg_quality: int = 90
  movie_start_s: float = 900.0


@dataclasses.dataclass
class ChunkResult:
  """Per keyframe: (keyframe, status, jpegs, error); frame size and rate."""
  task: MovieChunk
  clips: List[Tuple[Keyframe, str, List[bytes], str]]
  fps: float = 0.0
  height: int = 0
  width: int = 0


def read_split(split: str, boxes_csv: Optional[str],
               proposals_csv: Optional[str], excluded_csv: Optional[str],
               label_ids, movie_root: str, keyframes_per_task: int = 10,
               annotated_only: bool = False
               ) -> Tuple[List[MovieChunk], List[ava_files.Problem]]:
  """Chunks of the split's keyframes (those with ground truth or
  proposals; with annotated_only, those with ground truth) and every bad
  annotation row, with file and line."""
  problems: List[ava_files.Problem] = []
  gt_rows, proposal_rows = [], []
  if boxes_csv:
    gt_rows, bad = ava_files.read_boxes(boxes_csv, label_ids=label_ids)
    problems += bad
  if proposals_csv:
    proposal_rows, bad = ava_files.read_boxes(proposals_csv, proposals=True)
    problems += bad
  excluded, bad = ava_files.read_excluded(excluded_csv)
  problems += bad
  movies = sources.index_video_root(movie_root)
  # A row of a movie that has no file is reported (file, first line, how
  # many rows); its keyframes stay in the manifest as `missing`.
  for path, rows in ((boxes_csv, gt_rows), (proposals_csv, proposal_rows)):
    lines: Dict[str, List[int]] = {}
    for row in rows:
      if row.video_id not in movies:
        lines.setdefault(row.video_id, []).append(row.line)
    for video_id, at in sorted(lines.items()):
      problems.append(ava_files.Problem(
          path, at[0], f'no movie file for video {video_id!r} under '
          f'{movie_root} ({len(at)} rows of it, lines {at[0]}-{at[-1]})'))
  gt = ava_files.group_boxes(gt_rows)
  proposals: Dict[Tuple[str, int], List] = {}
  for row in proposal_rows:
    proposals.setdefault(row.keyframe, []).append((row.box, row.score))
  chunks = []
  by_movie: Dict[str, List[Keyframe]] = {}
  for key in sorted(set(gt) if annotated_only else set(gt) | set(proposals)):
    ranked = sorted(proposals.get(key, []), key=lambda bs: -bs[1])
    by_movie.setdefault(key[0], []).append(Keyframe(
        key[1], tuple((b, a, p) for b, a, p, _ in gt.get(key, [])),
        tuple(ranked), key in excluded))
  for video_id, keyframes in sorted(by_movie.items()):
    for i in range(0, len(keyframes), max(1, keyframes_per_task)):
      chunks.append(MovieChunk(video_id, movies.get(video_id), split,
                               tuple(keyframes[i:i + keyframes_per_task])))
  return chunks, problems


def _clip_times(timestamp: int, options: ClipOptions) -> List[float]:
  """Movie-file times of a keyframe's clip frames (keyframe at the middle)."""
  centre = timestamp - options.movie_start_s
  half = options.clip_frames // 2
  return [centre + (k - half) / options.fps
          for k in range(options.clip_frames)]


def failed_chunk(task: MovieChunk, status: str, error: str) -> ChunkResult:
  """Every keyframe of a chunk that could not be converted (`status`); the
  excluded ones stay excluded."""
  return ChunkResult(task, [
      (k, EXCLUDED, [], 'listed in the excluded timestamps') if k.excluded
      else (k, status, [], error) for k in task.keyframes])


def convert_chunk(task: MovieChunk, options: ClipOptions) -> ChunkResult:
  """Decodes a chunk's window once and cuts each keyframe's clip; bad input
  becomes a status per keyframe, never an exception."""
  wanted = [k for k in task.keyframes if not k.excluded]
  clips = [(k, EXCLUDED, [], 'listed in the excluded timestamps')
           for k in task.keyframes if k.excluded]

  def fail_all(status, error):
    return ChunkResult(task, clips + [(k, status, [], error) for k in wanted])
  if not wanted:
    return ChunkResult(task, clips)
  if task.path is None or not files.is_file(task.path):
    return fail_all(vd.MISSING, f'no movie file for {task.video_id!r}')
  first = _clip_times(wanted[0].timestamp, options)[0]
  last = _clip_times(wanted[-1].timestamp, options)[-1]
  try:
    # JPEG-encoded as decoded: a chunk never holds its raw frames.
    decoded = vd.decode_video(task.path, vd.DecodeOptions(
        fps=options.fps, short_side=options.short_side,
        start_s=max(0.0, first), end_s=last + 1.0 / options.fps),
        lambda rgb: video_frames.encode_jpeg(rgb, options.jpeg_quality))
  except Exception as e:  # pylint: disable=broad-except
    return fail_all(vd.UNREADABLE, f'{type(e).__name__}: {e}')
  if decoded.error:
    return fail_all(vd.CORRUPT, decoded.error)
  if not decoded.frames:
    return fail_all(vd.TOO_SHORT, (
        f'no frames in the clips\' window [{first:.2f}, {last:.2f}] s of the '
        f'movie file (is --movie_start_s={options.movie_start_s:g} right '
        'for these files?)'))
  start = decoded.start_us / 1e6
  for keyframe in wanted:
    times = _clip_times(keyframe.timestamp, options)
    index = [int(round((t - start) * options.fps)) for t in times]
    # Rounding may put the first or last frame one step outside.
    if index[0] < -1 or index[-1] > len(decoded.frames):
      clips.append((keyframe, vd.TOO_SHORT, [], (
          f'clip [{times[0]:.2f}, {times[-1]:.2f}] s of the movie file is '
          f'outside its decoded frames [{start:.2f}, '
          f'{start + len(decoded.frames) / options.fps:.2f}] s (is '
          f'--movie_start_s={options.movie_start_s:g} right for these '
          'files?)')))
      continue
    jpegs = [decoded.frames[min(max(i, 0), len(decoded.frames) - 1)]
             for i in index]
    clips.append((keyframe, vd.OK, jpegs, ''))
  clips.sort(key=lambda c: c[0].timestamp)
  height, width = decoded.height, decoded.width
  return ChunkResult(task, clips, decoded.fps, height, width)


def _box_features(prefix: str, boxes: Sequence) -> Dict[str, tf.train.Feature]:
  return {f'{prefix}/{name}': shards.float_feature(b[i] for b in boxes)
          for i, name in enumerate(features.BOX_COORDINATES)}


def build_keyframe_example(result: ChunkResult, keyframe: Keyframe,
                           jpegs: List[bytes], options_fps: float) -> bytes:
  """Serialised SequenceExample of one keyframe (keys: `features`)."""
  task = result.task
  ints, floats, text = (shards.int64_feature, shards.float_feature,
                        shards.bytes_feature)
  boxes = [b for b, _, _ in keyframe.boxes]
  context = {
      features.CLIP_ID_KEY: text([ava_files.keyframe_key(
          task.video_id, keyframe.timestamp).encode()]),
      features.MEDIA_ID_KEY: text([task.video_id.encode()]),
      features.FILENAME_KEY: text([(task.path or '').encode()]),
      features.KEYFRAME_TIMESTAMP_KEY: ints([keyframe.timestamp]),
      features.KEYFRAME_INDEX_KEY: ints([len(jpegs) // 2]),
      features.FPS_KEY: floats([options_fps]),
      features.NUM_FRAMES_KEY: ints([len(jpegs)]),
      features.HEIGHT_KEY: ints([result.height]),
      features.WIDTH_KEY: ints([result.width]),
      features.BOX_LABEL_INDEX_KEY: ints(
          a for _, actions, _ in keyframe.boxes for a in actions),
      features.BOX_LABEL_BOX_KEY: ints(
          i for i, (_, actions, _) in enumerate(keyframe.boxes)
          for _ in actions),
      features.BOX_PERSON_ID_KEY: ints(p for _, _, p in keyframe.boxes),
      features.PROPOSAL_SCORE_KEY: floats(s for _, s in keyframe.proposals),
  }
  context.update(_box_features(features.BOX_PREFIX, boxes))
  context.update(_box_features(features.PROPOSAL_PREFIX,
                               [b for b, _ in keyframe.proposals]))
  return shards.serialize_clip(context, jpegs)


def encode_chunk(result: ChunkResult) -> shards.Encoded:
  """Records of the chunk's converted keyframes; a row for every keyframe."""
  records, rows, frames = [], [], 0
  for keyframe, status, jpegs, error in result.clips:
    if status == vd.OK:
      records.append(build_keyframe_example(result, keyframe, jpegs,
                                            result.fps))
      frames += len(jpegs)
    rows.append({
        'id': ava_files.keyframe_key(result.task.video_id,
                                     keyframe.timestamp),
        'path': result.task.path, 'split': result.task.split,
        'status': status, 'frames': len(jpegs),
        'boxes': len(keyframe.boxes), 'proposals': len(keyframe.proposals),
        'error': error})
  return records, rows, frames
