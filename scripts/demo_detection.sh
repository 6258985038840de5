#!/usr/bin/env bash
# AVA-style action detection end to end, CPU only, no network: a synthetic AVA
# (real mp4 movies, annotation files in AVA v2.2's formats) -> convert_ava ->
# inspect -> fine-tune the detector from the CVRL demo checkpoint and from
# random weights -> frame mAP@0.5 table. The CVRL checkpoint is the main
# demo's (scripts/demo.sh), run first if $OUT/pretrain holds none.
# Everything goes to demo_output/ (or $1). CVRL_DEMO_QUICK=1: a few steps.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/ensure_venv.sh
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
OUT=${1:-demo_output}
PY=.venv/bin/python
start=$(date +%s)
train_movies=48 val_movies=12 extra=''
if [[ "${CVRL_DEMO_QUICK:-0}" == 1 ]]; then
  train_movies=4 val_movies=2
  extra=',trainer.train_steps=6,trainer.steps_per_loop=3,trainer.summary_interval=3,trainer.checkpoint_interval=6,trainer.validation_interval=6'
fi

if ! ls "$OUT"/pretrain/ckpt-*.index > /dev/null 2>&1; then
  echo "== 0/5 no CVRL checkpoint in $OUT/pretrain: running scripts/demo.sh"
  bash scripts/demo.sh "$OUT"
fi
AVA=$OUT/ava
echo "== 1/5 synthetic AVA -> $AVA"
rm -rf "$AVA"
$PY -m tfrecords_tools.make_synthetic_ava --output_dir="$AVA" \
    --train_movies=$train_movies --val_movies=$val_movies

echo "== 2/5 convert_ava (16 frames at 10 fps around each keyframe)"
for split in train val; do
  # Training keyframes: those with ground truth (as PySlowFast trains).
  selection=all; [[ $split == train ]] && selection=annotated
  $PY -m tfrecords_tools.convert_ava --split=$split --keyframes=$selection \
      --annotation_dir="$AVA/annotations" --video_root="$AVA/movies" \
      --output_dir="$AVA/tfrecords/$split" --fps=10 --clip_frames=16 \
      --short_side=0 --num_shards=4
done

echo "== 3/5 inspect (boxes, labels, one keyframe drawn)"
$PY -m tfrecords_tools.inspect_tfrecords --ava \
    --input_path="$AVA/tfrecords/train/train-*.tfrecord" \
    --label_map="$AVA/annotations/ava_action_list_v2.2.pbtxt" \
    --draw_keyframe="$AVA/keyframe.png"
data="task.train_data.input_path=$AVA/tfrecords/train/train-*.tfrecord,task.validation_data.input_path=$AVA/tfrecords/val/val-*.tfrecord,task.evaluated_label_map=$AVA/annotations/ava_action_list_v2.2_for_activitynet_2019.pbtxt,task.label_map=$AVA/annotations/ava_action_list_v2.2.pbtxt,task.groundtruth_csv=$AVA/annotations/ava_val_v2.2.csv,task.excluded_timestamps=$AVA/annotations/ava_val_excluded_timestamps_v2.2.csv"

# The main demo's encoder (cvrl_pretrain_small) reads residual frames; the
# detector built on it, and its random-init baseline, read them too.
data="$data,task.model.backbone.cvrl_r3d.input_frames=difference"
# Stem and res2 keep their initial weights (Detectron2's default for a
# pretrained backbone), in both runs: the one setting where the pretraining
# shows (docs/detection_demo.md has the table; fine-tuning everything, both
# inits are level).
data="$data,task.fine_tune_from=res3"

source scripts/train_job.sh  # run NAME ARGS...
echo "== 4/5 fine-tune from the CVRL demo checkpoint -> $OUT/ava_cvrl"
run ava_cvrl --experiment=cvrl_ava_demo \
    --params_override="$data,task.init_checkpoint=$OUT/pretrain$extra"
echo "== 5/5 fine-tune from random weights -> $OUT/ava_random"
run ava_random --experiment=cvrl_ava_demo \
    --params_override="$data,task.init_checkpoint=,task.random_backbone=true$extra"

echo
echo "Frame mAP@0.5 on the held-out synthetic movies (4 evaluated actions):"
$PY -m cvrl.tools.eval_report --detection --margin \
    --runs="CVRL=$OUT/ava_cvrl,random=$OUT/ava_random"
echo "per-class AP and detections (AVA CSV layout): $OUT/ava_*/ava_*_step_*.csv"
echo "demo_detection: done in $(( $(date +%s) - start ))s"
