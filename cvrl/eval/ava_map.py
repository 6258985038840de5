"""Frame-level mAP at IoU 0.5, with the official AVA evaluator's semantics.

The official evaluator (ActivityNet's `get_ava_performance.py` and its
`ava_evaluation`, a copy of the TF Object Detection API's PASCAL
evaluator) first reads the detections keeping, per keyframe, only the 50
highest-scoring of the evaluated classes (`cap_per_keyframe`: its heap, so
ties break as its heap breaks them), then, per evaluated class:
  1. skip every keyframe listed in the excluded timestamps, ground truth and
     detections alike;
  2. per keyframe, sort that class's detections by score (highest first)
     and give each the ground-truth box of that class it overlaps most; it
     is a true positive when that IoU >= 0.5 and the box is still
     unmatched, otherwise a false positive (a second detection of a matched
     box is a false positive, and is NOT passed on to the next-best box).
     A keyframe with no ground truth makes all its detections false;
  3. pool all keyframes' detections, sort by score, and compute PASCAL VOC
     AP: precision made non-increasing from the right, summed over the
     points where recall changes (all-point interpolation, VOC 2010+);
  4. a class with no ground-truth box has AP NaN and is left out of the mean.

Boxes are (x1, y1, x2, y2) in any consistent unit; IoU uses areas without
the +1 pixel term (normalised coordinates). Ties in score keep input order
(a stable sort), which the official code leaves to numpy's quicksort.
"""

import dataclasses
import heapq
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

import numpy as np

from cvrl import files

IOU_THRESHOLD = 0.5
# Detections per keyframe the official evaluator reads (read_csv's capacity).
OFFICIAL_CAPACITY = 50

# (keyframe key, box, class id, score); ground truth: (key, box, class id).
Detection = Tuple[str, Tuple[float, float, float, float], int, float]
GroundTruth = Tuple[str, Tuple[float, float, float, float], int]


def iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
  """[N, 4] x [M, 4] (x1, y1, x2, y2) -> [N, M] intersection over union."""
  a = np.asarray(boxes_a, np.float64).reshape(-1, 4)
  b = np.asarray(boxes_b, np.float64).reshape(-1, 4)
  x1 = np.maximum(a[:, None, 0], b[None, :, 0])
  y1 = np.maximum(a[:, None, 1], b[None, :, 1])
  x2 = np.minimum(a[:, None, 2], b[None, :, 2])
  y2 = np.minimum(a[:, None, 3], b[None, :, 3])
  inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
  area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
  area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
  union = area_a[:, None] + area_b[None, :] - inter
  return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def match_keyframe(det_boxes, det_scores, gt_boxes,
                   threshold: float = IOU_THRESHOLD) -> np.ndarray:
  """True-positive flags of one keyframe's detections of one class, in the
  order given (step 2 of the module doc)."""
  det_boxes = np.asarray(det_boxes, np.float64).reshape(-1, 4)
  tp = np.zeros(len(det_boxes), bool)
  if not len(det_boxes) or not len(gt_boxes):
    return tp
  order = np.argsort(-np.asarray(det_scores, np.float64), kind='stable')
  overlaps = iou(det_boxes, gt_boxes)
  taken = np.zeros(len(gt_boxes), bool)
  for i in order:
    best = int(np.argmax(overlaps[i]))
    if overlaps[i, best] >= threshold and not taken[best]:
      tp[i] = True
      taken[best] = True
  return tp


def voc_average_precision(scores, tp, num_gt: int) -> float:
  """PASCAL VOC all-point AP of pooled detections; NaN when num_gt is 0."""
  if num_gt == 0:
    return float('nan')
  scores = np.asarray(scores, np.float64)
  if not len(scores):
    return 0.0
  order = np.argsort(-scores, kind='stable')
  hits = np.asarray(tp, np.float64)[order]
  true_pos = np.cumsum(hits)
  false_pos = np.cumsum(1.0 - hits)
  recall = np.concatenate([[0.0], true_pos / num_gt, [1.0]])
  precision = np.concatenate([[0.0], true_pos / (true_pos + false_pos),
                              [0.0]])
  for i in range(len(precision) - 2, -1, -1):
    precision[i] = max(precision[i], precision[i + 1])
  changed = np.where(recall[1:] != recall[:-1])[0] + 1
  return float(np.sum((recall[changed] - recall[changed - 1]) *
                      precision[changed]))


@dataclasses.dataclass
class Result:
  """mAP over the classes with ground truth, and per-class details."""
  mean_ap: float
  per_class_ap: Dict[int, float]
  num_gt: Dict[int, int]
  num_detections: Dict[int, int]
  excluded_keyframes: int
  ignored_detections: int  # of classes that are not evaluated
  capped_detections: int = 0  # past the 50 per keyframe the evaluator reads


def cap_per_keyframe(detections: Iterable[Detection], class_ids,
                     capacity: int = OFFICIAL_CAPACITY
                     ) -> Tuple[List[Detection], List[Detection], int]:
  """The official reader's cut: (kept, of other classes, number cut).

  In input order, detections of the evaluated classes go into a min-heap
  per keyframe of (score, class, y1, x1, y2, x2); once it holds `capacity`,
  a detection replaces the heap's least only with a strictly higher score.
  Each keyframe's survivors come out sorted by descending score from the
  heap's array (the order the official code hands on). capacity < 1 keeps
  everything. Detections of other classes are returned apart, uncapped
  (the official reader drops them before the heap).
  """
  evaluated = set(class_ids)
  heaps: Dict[str, List[tuple]] = {}
  others, cut = [], 0
  for key, box, cls, score in detections:
    if cls not in evaluated:
      others.append((key, box, cls, score))
      continue
    x1, y1, x2, y2 = box
    entry = (score, cls, y1, x1, y2, x2)
    heap = heaps.setdefault(key, [])
    if capacity < 1 or len(heap) < capacity:
      heapq.heappush(heap, entry)
      continue
    cut += 1
    if score > heap[0][0]:
      heapq.heapreplace(heap, entry)
  kept = [(key, (x1, y1, x2, y2), cls, score)
          for key, heap in heaps.items()
          for score, cls, y1, x1, y2, x2 in sorted(heap, key=lambda t: -t[0])]
  return kept, others, cut


def evaluate(groundtruth: Iterable[GroundTruth],
             detections: Iterable[Detection],
             class_ids: Sequence[int],
             excluded: Optional[Set[str]] = None,
             threshold: float = IOU_THRESHOLD,
             capacity: int = OFFICIAL_CAPACITY) -> Result:
  """Frame-level AP per class and their mean (see the module doc).

  Args:
    groundtruth: (keyframe key, box, class id) per ground-truth box and
      action (a box with two actions appears twice).
    detections: (keyframe key, box, class id, score).
    class_ids: the evaluated classes (AVA: the 60 of the challenge list).
    excluded: keyframe keys to skip entirely.
    capacity: detections kept per keyframe (`cap_per_keyframe`; the
      official 50; < 1 keeps all).
  """
  excluded = excluded or set()
  evaluated = set(class_ids)
  gt: Dict[int, Dict[str, List]] = {c: {} for c in evaluated}
  skipped_keys = set()
  for key, box, cls in groundtruth:
    if key in excluded:
      skipped_keys.add(key)
    elif cls in evaluated:
      gt[cls].setdefault(key, []).append(box)
  dets: Dict[int, Dict[str, List]] = {c: {} for c in evaluated}
  kept, others, capped = cap_per_keyframe(detections, evaluated, capacity)
  ignored = len(others)
  skipped_keys.update(key for key, *_ in others if key in excluded)
  for key, box, cls, score in kept:
    if key in excluded:
      skipped_keys.add(key)
    else:
      dets[cls].setdefault(key, []).append((box, score))
  per_class, num_gt, num_det = {}, {}, {}
  for cls in sorted(evaluated):
    scores, hits = [], []
    for key, items in dets[cls].items():
      boxes = np.array([b for b, _ in items], np.float64)
      key_scores = np.array([s for _, s in items], np.float64)
      gt_boxes = np.array(gt[cls].get(key, []), np.float64).reshape(-1, 4)
      hits.append(match_keyframe(boxes, key_scores, gt_boxes, threshold))
      scores.append(key_scores)
    num_gt[cls] = sum(len(v) for v in gt[cls].values())
    num_det[cls] = sum(len(s) for s in scores)
    per_class[cls] = voc_average_precision(
        np.concatenate(scores) if scores else [],
        np.concatenate(hits) if hits else [], num_gt[cls])
  values = [v for v in per_class.values() if not np.isnan(v)]
  mean_ap = float(np.mean(values)) if values else float('nan')
  return Result(mean_ap, per_class, num_gt, num_det, len(skipped_keys),
                ignored, capped)


def write_per_class_csv(path: str, result: Result,
                        names: Dict[int, str]) -> None:
  """class_id,name,ap,num_gt,num_detections per evaluated class, then mAP."""
  with files.open_file(path, 'w') as f:
    f.write('class_id,name,ap,num_gt,num_detections\n')
    for cls, ap in sorted(result.per_class_ap.items()):
      name = names.get(cls, str(cls)).replace('"', "'")
      f.write(f'{cls},"{name}",{ap:.6f},{result.num_gt[cls]},'
              f'{result.num_detections[cls]}\n')
    f.write(f'mean,"mAP@{IOU_THRESHOLD}",{result.mean_ap:.6f},'
            f'{sum(result.num_gt.values())},'
            f'{sum(result.num_detections.values())}\n')
