"""The AVA frame-level mAP evaluator on hand-computed cases and against
pycocotools, and the AVA annotation readers on good and bad rows."""

import math

import numpy as np
import pytest

from cvrl.data import ava_files
from cvrl.eval import ava_map

A = (0.1, 0.1, 0.4, 0.6)
B = (0.5, 0.2, 0.9, 0.9)
ELSEWHERE = (0.0, 0.0, 0.05, 0.05)


def _map(gt, dets, classes=(1,), excluded=None):
  return ava_map.evaluate(gt, dets, classes, excluded)


def test_iou_hand_computed():
  # Two unit squares overlapping by half: 0.5 / 1.5.
  got = ava_map.iou([[0, 0, 1, 1]], [[0.5, 0, 1.5, 1], [2, 2, 3, 3]])
  np.testing.assert_allclose(got, [[1 / 3, 0.0]])


def test_perfect_detections_give_ap_one():
  gt = [('v,0902', A, 1), ('v,0902', B, 1), ('v,0903', A, 1)]
  dets = [(k, b, c, 0.9) for k, b, c in gt]
  assert _map(gt, dets).mean_ap == pytest.approx(1.0)


def test_missed_box_halves_recall():
  gt = [('v,0902', A, 1), ('v,0902', B, 1)]
  result = _map(gt, [('v,0902', A, 1, 0.9)])
  assert result.per_class_ap[1] == pytest.approx(0.5)


def test_duplicate_is_a_false_positive():
  # Hits in score order: A (tp), A again (fp), B (tp).
  # precision 1, 1/2, 2/3 -> from the right 1, 2/3, 2/3; recall .5, .5, 1.
  # AP = 0.5 * 1 + 0.5 * 2/3.
  gt = [('v,0902', A, 1), ('v,0902', B, 1)]
  dets = [('v,0902', A, 1, 0.9), ('v,0902', A, 1, 0.8), ('v,0902', B, 1, 0.7)]
  assert _map(gt, dets).per_class_ap[1] == pytest.approx(0.5 + 1 / 3)


def test_wrong_class_counts_for_neither():
  gt = [('v,0902', A, 1)]
  result = _map(gt, [('v,0902', A, 2, 0.9)], classes=(1, 2))
  assert result.per_class_ap[1] == 0.0
  assert math.isnan(result.per_class_ap[2])  # no ground truth: left out
  assert result.mean_ap == 0.0
  assert result.num_detections == {1: 0, 2: 1}


def test_unevaluated_class_is_ignored_and_counted():
  gt = [('v,0902', A, 1)]
  result = _map(gt, [('v,0902', A, 1, 0.9), ('v,0902', A, 7, 0.9)])
  assert result.mean_ap == 1.0 and result.ignored_detections == 1


def test_excluded_keyframes_are_skipped_entirely():
  gt = [('v,0902', A, 1), ('v,0903', B, 1)]
  dets = [('v,0902', A, 1, 0.9), ('v,0903', ELSEWHERE, 1, 0.99)]
  assert _map(gt, dets).per_class_ap[1] == pytest.approx(0.5 * 0.5)
  result = _map(gt, dets, excluded={'v,0903'})
  assert result.per_class_ap[1] == 1.0
  assert result.num_gt[1] == 1 and result.excluded_keyframes == 1


def test_detection_on_keyframe_without_ground_truth_is_false():
  gt = [('v,0902', A, 1)]
  dets = [('v,0902', A, 1, 0.5), ('v,0999', A, 1, 0.9)]
  # fp then tp: precision 0, 1/2 -> AP = 1 * 0.5.
  assert _map(gt, dets).per_class_ap[1] == pytest.approx(0.5)


def test_match_goes_to_the_best_box_not_the_next_best():
  # Both detections overlap G1 most; the second is false even though it
  # overlaps G2 above 0.5 (the official evaluator does not re-assign).
  g1, g2 = (0.0, 0.0, 1.0, 1.0), (0.1, 0.0, 1.1, 1.0)
  d1, d2 = (0.0, 0.0, 1.0, 1.0), (0.03, 0.0, 1.03, 1.0)
  overlaps = ava_map.iou([d2], [g1, g2])[0]
  assert overlaps[0] > overlaps[1] >= 0.5
  tp = ava_map.match_keyframe([d1, d2], [0.9, 0.8], [g1, g2])
  assert tp.tolist() == [True, False]


def test_iou_threshold_is_inclusive():
  gt = (0.0, 0.0, 1.0, 1.0)
  half = (0.0, 0.0, 0.5, 1.0)  # IoU exactly 0.5
  assert ava_map.match_keyframe([half], [1.0], [gt]).tolist() == [True]


def test_voc_ap_against_pycocotools():
  """Random detections, one object per keyframe (no matching ambiguity):
  COCO's AP at IoU 0.5 samples the same interpolated curve at 101 recall
  points, so it agrees with the all-point AP to ~1/100."""
  pycocotools = pytest.importorskip('pycocotools.cocoeval')
  from pycocotools import coco as coco_api  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  gt, dets, images, annotations, results = [], [], [], [], []
  for i in range(400):
    key = f'v,{1000 + i:04d}'
    x, y = rng.uniform(0, 0.5, 2)
    box = (x, y, x + 0.4, y + 0.4)
    images.append({'id': i, 'width': 1, 'height': 1})
    if rng.uniform() < 0.8:
      gt.append((key, box, 1))
      annotations.append({'id': len(annotations) + 1, 'image_id': i,
                          'category_id': 1, 'iscrowd': 0,
                          'bbox': [x, y, 0.4, 0.4], 'area': 0.16})
    if rng.uniform() < 0.7:
      shift = rng.uniform(0, 0.25)  # IoU above or below 0.5
      det = (x + shift, y, x + shift + 0.4, y + 0.4)
      # Better-placed boxes score higher, with noise.
      score = float(1.0 - 3.0 * shift + rng.normal(0.0, 0.2))
      dets.append((key, det, 1, score))
      results.append({'image_id': i, 'category_id': 1, 'score': score,
                      'bbox': [det[0], det[1], 0.4, 0.4]})
  ours = ava_map.evaluate(gt, dets, [1]).per_class_ap[1]
  ground = coco_api.COCO()
  ground.dataset = {'images': images, 'annotations': annotations,
                    'categories': [{'id': 1, 'name': 'a'}]}
  ground.createIndex()
  evaluator = pycocotools.COCOeval(ground, ground.loadRes(results), 'bbox')
  evaluator.params.iouThrs = np.array([0.5])
  evaluator.params.maxDets = [1, 10, 100]
  evaluator.params.areaRng = [[0, 1e9]]
  evaluator.params.areaRngLbl = ['all']
  evaluator.evaluate()
  evaluator.accumulate()
  coco_ap = float(np.mean(evaluator.eval['precision'][0, :, 0, 0, -1]))
  assert 0.2 < ours < 0.9  # a case that is neither trivial nor hopeless
  assert ours == pytest.approx(coco_ap, abs=0.01)


def test_per_class_csv(tmp_path):
  result = _map([('v,0902', A, 1)], [('v,0902', A, 1, 0.9)], classes=(1, 2))
  path = tmp_path / 'ap.csv'
  ava_map.write_per_class_csv(str(path), result, {1: 'walk', 2: 'sit'})
  lines = path.read_text().splitlines()
  assert lines[0] == 'class_id,name,ap,num_gt,num_detections'
  assert lines[1] == '1,"walk",1.000000,1,1'
  assert lines[2].startswith('2,"sit",nan')
  assert lines[3].startswith('mean,') and ',1.000000,' in lines[3]


LABEL_MAP = """label {
  name: "bend/bow (at the waist)"
  label_id: 1
  label_type: PERSON_MOVEMENT
}
label {
  name: "walk"
  label_id: 14
  label_type: PERSON_MOVEMENT
}
"""


def test_label_maps_in_both_layouts(tmp_path):
  full = tmp_path / 'full.pbtxt'
  full.write_text(LABEL_MAP)
  assert ava_files.read_label_map(str(full)) == {
      1: 'bend/bow (at the waist)', 14: 'walk'}
  items = tmp_path / 'items.pbtxt'
  ava_files.write_label_map(str(items), {14: 'walk'}, style='item')
  assert 'item {' in items.read_text()
  assert ava_files.read_label_map(str(items)) == {14: 'walk'}
  broken = tmp_path / 'broken.pbtxt'
  broken.write_text('label {\n  name: "x"\n}\n')
  with pytest.raises(ava_files.AnnotationError, match='broken.pbtxt:1'):
    ava_files.read_label_map(str(broken))


def test_bad_rows_are_reported_with_file_and_line(tmp_path):
  path = tmp_path / 'ava_train_v2.2.csv'
  path.write_text('\n'.join([
      'vid1,0902,0.1,0.2,0.3,0.4,14,0',   # good
      'vid1,0902,0.1,0.2,1.3,0.4,14,0',   # x2 outside [0, 1]
      'vid1,0903,0.1,0.2,0.3,0.4,99,1',   # unknown action
      'vid1,0904,0.5,0.2,0.3,0.4,1,1',    # x2 < x1
      'vid1,09x4,0.1,0.2,0.3,0.4,1,1',    # bad timestamp
      'vid1,0905,0.1,0.2,0.3',            # short row
      'vid1,0902,0.1,0.2,0.3,0.4,1,0',    # good: same box, second action
  ]) + '\n')
  rows, problems = ava_files.read_boxes(str(path), label_ids={1, 14})
  assert [r.line for r in rows] == [1, 7]
  assert [p.line for p in problems] == [2, 3, 4, 5, 6]
  text = [str(p) for p in problems]
  assert text[0].startswith(f'{path}:2: box') and 'outside [0, 1]' in text[0]
  assert 'action id 99 is not in the label map' in text[1]
  assert 'empty' in text[2] and 'timestamp' in text[3]
  assert '5 columns' in text[4]
  grouped = ava_files.group_boxes(rows)
  assert grouped == {('vid1', 902): [((0.1, 0.2, 0.3, 0.4), (1, 14), 0, 1.0)]}


def test_proposals_and_excluded(tmp_path):
  proposals = tmp_path / 'proposals.csv'
  proposals.write_text('vid1,0902,0.1,0.2,0.3,0.4,,0.95\n'
                       'vid1,0902,0.1,0.2,0.3,0.4,-1,3,0.5\n'
                       'vid1,0902,0.1,0.2,0.3,0.4,,high\n')
  rows, problems = ava_files.read_boxes(str(proposals), proposals=True)
  assert [(r.score, r.person_id) for r in rows] == [(0.95, -1), (0.5, 3)]
  assert len(problems) == 1 and problems[0].line == 3
  excluded = tmp_path / 'excluded.csv'
  excluded.write_text('vid1,0905\nvid2\n')
  keys, problems = ava_files.read_excluded(str(excluded))
  assert keys == {('vid1', 905)} and problems[0].line == 2
  assert ava_files.keyframe_key('vid1', 905) == 'vid1,0905'


def _fifty_elsewhere(key='v,0902', score=0.9, cls=1):
  """50 detections of class `cls` on `key` that hit nothing."""
  return [(key, (0.0, 0.0, 0.01 * (i + 1), 0.01), cls, score)
          for i in range(50)]


def test_official_cap_true_box_as_the_51st_scores_zero():
  # get_ava_performance.py reads at most 50 detections per keyframe: the
  # 51st, lower than the 50 before it, is never seen.
  gt = [('v,0902', A, 1)]
  dets = _fifty_elsewhere() + [('v,0902', A, 1, 0.5)]
  result = _map(gt, dets)
  assert result.per_class_ap[1] == 0.0 and result.capped_detections == 1
  uncapped = ava_map.evaluate(gt, dets, [1], capacity=0)
  assert uncapped.per_class_ap[1] > 0.0 and uncapped.capped_detections == 0


def test_official_cap_keeps_a_higher_score_that_comes_late():
  gt = [('v,0902', A, 1)]
  dets = _fifty_elsewhere(score=0.4) + [('v,0902', A, 1, 0.95)]
  result = _map(gt, dets)
  assert result.per_class_ap[1] == 1.0  # ranked first of the 50 kept
  assert result.num_detections[1] == 50 and result.capped_detections == 1


def test_official_cap_an_equal_score_does_not_replace():
  # heapreplace only when score > the heap's least: a tie stays out.
  gt = [('v,0902', A, 1)]
  result = _map(gt, _fifty_elsewhere(score=0.5) + [('v,0902', A, 1, 0.5)])
  assert result.per_class_ap[1] == 0.0


def test_official_cap_counts_evaluated_classes_per_keyframe_only():
  gt = [('v,0902', A, 1), ('v,0903', B, 1)]
  # 60 detections of an unevaluated class (dropped before the heap) and 50
  # on another keyframe take none of this keyframe's places.
  dets = ([('v,0902', B, 7, 0.99)] * 60 + _fifty_elsewhere('v,0903') +
          [('v,0902', A, 1, 0.1), ('v,0903', B, 1, 0.95)])
  result = _map(gt, dets)
  # Kept: v,0902's true box, and on v,0903 the 0.95 hit in place of one of
  # the 50 misses: pooled, a hit, 49 misses, a hit -> AP .5 + .5 * 2 / 51.
  assert result.num_detections[1] == 51
  assert result.per_class_ap[1] == pytest.approx(0.5 + 0.5 * 2 / 51)
  assert result.ignored_detections == 60 and result.capped_detections == 1


def test_ava_eval_command_applies_the_official_cap(tmp_path):
  from tests.conftest import run_module  # pylint: disable=g-import-not-at-top
  label_map = tmp_path / 'labels.pbtxt'
  ava_files.write_label_map(str(label_map), {1: 'walk'}, style='item')
  (tmp_path / 'gt.csv').write_text('v,0902,0.1,0.1,0.4,0.6,1,0\n')
  rows = [f'v,0902,0.000,0.000,{0.01 * (i + 1):.3f},0.010,1,0.900000'
          for i in range(50)] + ['v,0902,0.100,0.100,0.400,0.600,1,0.500000']
  (tmp_path / 'dets.csv').write_text('\n'.join(rows) + '\n')
  result = run_module('cvrl.tools.ava_eval', f'--groundtruth={tmp_path}/gt.csv',
                      f'--detections={tmp_path}/dets.csv',
                      f'--label_map={label_map}')
  assert 'frame mAP@0.5 0.0000' in result.stdout
  assert '1 detections past the official 50 per keyframe cut' in result.stdout
