"""A synthetic AVA: real mp4 "movies" of actors whose actions differ by motion,
with every annotation file in AVA v2.2's formats.

Each movie has 2-3 actors (textured rectangles) on its own textured
background. An actor's life is a run of 2-5 s segments; in each it does one
movement action (walk left, walk right, jump, stand) and, in some, also
waves (a small arm swinging up and down beside it), so a keyframe's box has
one or two actions, told apart only by motion. Files, named as AVA and
PySlowFast name them:

  movies/{video_id}.mp4                   time 0 = AVA second 900 (like
                                          PySlowFast's videos_15min cuts)
  annotations/ava_{split}_v2.2.csv        one row per box and action
  annotations/ava_action_list_v2.2.pbtxt  all actions ('label' layout)
  annotations/ava_action_list_v2.2_for_activitynet_2019.pbtxt
                                          the evaluated ones ('item' layout)
  annotations/ava_{split}_excluded_timestamps_v2.2.csv
  annotations/ava_{split}_predicted_boxes.csv
                                          noisy person proposals with scores

Keyframes are every second from 902 to the movie's end minus 2 s. The same
seed gives the same files.
"""

import os
from typing import Dict, List, Tuple

import numpy as np

from cvrl.data import ava_files
from tfrecords_tools.datasets import synthetic

ACTIONS = {1: 'walk left', 2: 'walk right', 3: 'jump', 4: 'stand',
           5: 'wave'}
MOVEMENTS = (1, 2, 3, 4)
WAVE = 5
# Like AVA's 60 of 80: one action is annotated but not evaluated.
EVALUATED = (1, 2, 3, 5)
MOVIE_START_S = 900
FIRST_KEYFRAME = 902


def _segments(rng, seconds: float) -> List[Tuple[float, float, int, bool]]:
  """(start, end, movement action, waves) runs covering [0, seconds)."""
  out, t = [], 0.0
  while t < seconds:
    length = rng.uniform(2.0, 5.0)
    out.append((t, t + length, int(rng.choice(MOVEMENTS)),
                bool(rng.uniform() < 0.4)))
    t += length
  return out


def _actor_track(rng, seconds, fps, height, width):
  """Per frame (top, left) of one actor, its size, and its segments."""
  h, w = int(rng.uniform(0.3, 0.42) * height), int(rng.uniform(0.11, 0.15) *
                                                   width)
  speed = rng.uniform(0.12, 0.2) * width  # pixels per second
  segments = _segments(rng, seconds)
  num = int(round(seconds * fps))
  x = rng.uniform(0.1, 0.9) * (width - w)
  ground = rng.uniform(0.15, 0.95) * (height - h)
  tops, lefts = np.empty(num), np.empty(num)
  for i in range(num):
    t = i / fps
    start, _, move, _ = next(s for s in segments if s[0] <= t < s[1])
    if move in (1, 2):
      x += (-1 if move == 1 else 1) * speed / fps
      # Turning back at the frame's edge would be the other action; stop.
      x = float(np.clip(x, 0, width - w))
    lift = (0.14 * height * abs(np.sin(2 * np.pi * 1.5 * (t - start)))
            if move == 3 else 0.0)
    tops[i], lefts[i] = max(0.0, ground - lift), x
  return tops, lefts, (h, w), segments


def render_movie(seed: int, seconds: float, fps: int, height: int,
                 width: int):
  """Frames uint8 [N, H, W, 3] and per actor (tops, lefts, size, segments)."""
  rng = np.random.default_rng(seed)
  background = synthetic.texture(rng, height, width)
  actors = []
  for _ in range(int(rng.integers(2, 4))):
    track = _actor_track(rng, seconds, fps, height, width)
    actors.append(track + (synthetic.texture(rng, height, width),))
  num = int(round(seconds * fps))
  frames = np.empty((num, height, width, 3), np.uint8)
  for i in range(num):
    frame = background.copy()
    t = i / fps
    for tops, lefts, (h, w), segments, sprite in actors:
      top, left = int(tops[i]), int(lefts[i])
      frame[top:top + h, left:left + w] = sprite[:h, :w]
      start, _, _, waves = next(s for s in segments if s[0] <= t < s[1])
      if waves:
        arm_h, arm_w = max(2, h // 3), max(2, w // 2)
        swing = 0.5 * (1 + np.sin(2 * np.pi * 2.0 * (t - start)))
        arm_top = int(top + swing * (h - arm_h))
        arm_left = left + w if left + w + arm_w <= width else left - arm_w
        frame[arm_top:arm_top + arm_h, arm_left:arm_left + arm_w] = (
            255 - sprite[:arm_h, :arm_w])
    noise = rng.normal(0, 3, size=frame.shape)
    frames[i] = np.clip(frame + noise, 0, 255).astype(np.uint8)
  return frames, actors


def keyframe_boxes(actors, timestamp: int, fps: int, height: int,
                   width: int) -> List[Tuple]:
  """Ground truth at an AVA second: (x1, y1, x2, y2), actions, person id."""
  t = timestamp - MOVIE_START_S
  i = min(int(round(t * fps)), len(actors[0][0]) - 1)
  out = []
  for person, (tops, lefts, (h, w), segments, _) in enumerate(actors):
    _, _, move, waves = next(s for s in segments if s[0] <= t < s[1])
    box = (lefts[i] / width, tops[i] / height, min(1.0, (lefts[i] + w) / width),
           min(1.0, (tops[i] + h) / height))
    out.append((tuple(round(v, 3) for v in box),
                (move, WAVE) if waves else (move,), person))
  return out


def _proposals(rng, boxes) -> List[Tuple]:
  """Detector-like boxes: each actor's box jittered, usually scored high;
  sometimes a miss (low score) and sometimes a false box."""
  out = []
  for box, _, _ in boxes:
    jitter = np.clip(np.array(box) + rng.normal(0, 0.02, 4), 0, 1)
    if jitter[2] - jitter[0] < 0.02 or jitter[3] - jitter[1] < 0.02:
      jitter = np.array(box)
    score = rng.uniform(0.85, 1.0) if rng.uniform() > 0.1 else rng.uniform(
        0.5, 0.8)
    out.append((tuple(round(float(v), 3) for v in jitter), float(score)))
  if rng.uniform() < 0.3:
    x, y = rng.uniform(0, 0.8, 2)
    out.append(((round(x, 3), round(y, 3), round(x + 0.15, 3),
                 round(y + 0.2, 3)), float(rng.uniform(0.1, 0.9))))
  return out


def make_dataset(output_dir: str, movies: Dict[str, int], seconds: float,
                 fps: int, height: int, width: int, seed: int) -> Dict:
  """Writes movies and annotations; movies = {split: count}. Returns
  {split: number of annotated keyframes}."""
  movie_dir = os.path.join(output_dir, 'movies')
  notes = os.path.join(output_dir, 'annotations')
  os.makedirs(movie_dir, exist_ok=True)
  os.makedirs(notes, exist_ok=True)
  ava_files.write_label_map(
      os.path.join(notes, 'ava_action_list_v2.2.pbtxt'), ACTIONS)
  ava_files.write_label_map(
      os.path.join(notes, 'ava_action_list_v2.2_for_activitynet_2019.pbtxt'),
      {i: ACTIONS[i] for i in EVALUATED}, style='item')
  counts = {}
  last = int(MOVIE_START_S + seconds) - 2
  for s_index, (split, count) in enumerate(sorted(movies.items())):
    gt_rows, proposal_rows, excluded = [], [], []
    for m in range(count):
      video_id = f'syn{split[:2]}{m:03d}'
      rng = np.random.default_rng([seed, s_index, m])
      frames, actors = render_movie(int(rng.integers(2**31)), seconds, fps,
                                    height, width)
      synthetic.write_mp4(os.path.join(movie_dir, f'{video_id}.mp4'), frames,
                          fps)
      skip = int(rng.integers(FIRST_KEYFRAME, last + 1))
      excluded.append(f'{video_id},{skip:04d}\n')
      for ts in range(FIRST_KEYFRAME, last + 1):
        boxes = keyframe_boxes(actors, ts, fps, height, width)
        for (x1, y1, x2, y2), actions, person in boxes:
          for action in actions:
            gt_rows.append(f'{video_id},{ts:04d},{x1:.3f},{y1:.3f},{x2:.3f},'
                           f'{y2:.3f},{action},{person}\n')
        for (x1, y1, x2, y2), score in _proposals(rng, boxes):
          proposal_rows.append(f'{video_id},{ts:04d},{x1:.3f},{y1:.3f},'
                               f'{x2:.3f},{y2:.3f},,{score:.4f}\n')
    for name, rows in ((f'ava_{split}_v2.2.csv', gt_rows),
                       (f'ava_{split}_predicted_boxes.csv', proposal_rows),
                       (f'ava_{split}_excluded_timestamps_v2.2.csv',
                        excluded)):
      with open(os.path.join(notes, name), 'w', encoding='utf-8') as f:
        f.write(''.join(rows))
    counts[split] = count * (last + 1 - FIRST_KEYFRAME)
  return counts
