r"""Frame mAP@0.5 of an AVA detections CSV, with the official evaluator's rules.

  python -m cvrl.tools.ava_eval --groundtruth=ava_val_v2.2.csv \
      --detections=MODEL_DIR/ava_detections_step_N.csv \
      --label_map=ava_action_list_v2.2_for_activitynet_2019.pbtxt \
      --excluded=ava_val_excluded_timestamps_v2.2.csv [--per_class_csv=ap.csv]

The detections CSV is what the detection task writes (and what the official
evaluator reads): video_id,timestamp,x1,y1,x2,y2,action_id,score. Bad rows
of any input are printed with file and line and counted, never dropped
silently; the exit status is then 1.
"""

import sys

from absl import app
from absl import flags

from cvrl.data import ava_files
from cvrl.eval import ava_map
from cvrl.tools import cli

_GROUNDTRUTH = flags.DEFINE_string('groundtruth', None, 'AVA boxes CSV.')
_DETECTIONS = flags.DEFINE_string('detections', None, 'Detections CSV.')
_LABEL_MAP = flags.DEFINE_string('label_map', None,
                                 'The evaluated actions (.pbtxt).')
_EXCLUDED = flags.DEFINE_string('excluded', None,
                                'Excluded timestamps CSV (optional).')
_PER_CLASS_CSV = flags.DEFINE_string('per_class_csv', None,
                                     'Also write the per-class table here.')


def main(argv):
  del argv
  for name, flag in (('--groundtruth', _GROUNDTRUTH),
                     ('--detections', _DETECTIONS),
                     ('--label_map', _LABEL_MAP)):
    if not flag.value:
      raise app.UsageError(f'{name} is required')
  try:
    names = ava_files.read_label_map(_LABEL_MAP.value)
    gt, problems = ava_files.read_boxes(_GROUNDTRUTH.value)
    dets, bad = ava_files.read_boxes(_DETECTIONS.value, proposals=True)
    excluded, bad_excluded = ava_files.read_excluded(_EXCLUDED.value)
  except ava_files.AnnotationError as e:
    print(f'ava_eval: error: {e}', file=sys.stderr)
    return 2
  problems += bad + bad_excluded
  for problem in problems:
    print(f'ava_eval: bad row: {problem}', file=sys.stderr)
  result = ava_map.evaluate(
      [(ava_files.keyframe_key(*r.keyframe), r.box, r.action_id) for r in gt],
      [(ava_files.keyframe_key(*r.keyframe), r.box, r.action_id, r.score)
       for r in dets], sorted(names),
      {ava_files.keyframe_key(*k) for k in excluded})
  for cls, ap in sorted(result.per_class_ap.items()):
    print(f'{cls:3d} {names[cls]:40s} AP {ap:.4f}  ({result.num_gt[cls]} '
          f'boxes, {result.num_detections[cls]} detections)')
  print(f'frame mAP@0.5 {result.mean_ap:.4f} over {len(names)} actions; '
        f'{result.excluded_keyframes} excluded keyframes skipped; '
        f'{result.ignored_detections} detections of other actions ignored; '
        f'{result.capped_detections} detections past the official '
        f'{ava_map.OFFICIAL_CAPACITY} per keyframe cut; {len(problems)} bad '
        'rows')
  if _PER_CLASS_CSV.value:
    ava_map.write_per_class_csv(_PER_CLASS_CSV.value, result, names)
  return 1 if problems else 0


def run_main():
  cli.run(main)


if __name__ == '__main__':
  run_main()
