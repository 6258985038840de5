#!/usr/bin/env bash
# The main job, CPU only, no network: generate the synthetic motion dataset as
# real mp4 files, convert it to TFRecords with the real converter, inspect it,
# then pretrain the small R3D with CVRL and show how its contrastive loss and
# accuracy moved against chance. Everything goes to demo_output/ (or $1).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/ensure_venv.sh
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
OUT=${1:-demo_output}
PY=.venv/bin/python
start=$(date +%s)

echo "== 1/4 synthetic videos -> $OUT/videos"
$PY -m tfrecords_tools.make_synthetic --output_dir="$OUT/videos" \
    --videos_per_class=40 --num_frames=48 --size=64 --fps=12

echo "== 2/4 convert to TFRecords -> $OUT/tfrecords"
for split in train val; do
  $PY -m tfrecords_tools.convert_videos \
      --input_csv="$OUT/videos/$split.csv" --video_root="$OUT/videos" \
      --split="$split" --label_map="$OUT/videos/label_map.txt" \
      --output_dir="$OUT/tfrecords/$split" --short_side=0 --num_shards=4
done

echo "== 3/4 inspect and verify"
for split in train val; do
  $PY -m tfrecords_tools.inspect_tfrecords \
      --pattern="$OUT/tfrecords/$split/$split-*.tfrecord" --verify
done
echo "== 4/4 CVRL pretraining (R3D-14, 16x32x32 clips) -> $OUT/pretrain"
rm -rf "$OUT/pretrain"
pretrain_start=$(date +%s)
$PY -m cvrl.train --experiment=cvrl_pretrain_demo --mode=train_and_eval \
    --model_dir="$OUT/pretrain" \
    --params_override="task.train_data.input_path=$OUT/tfrecords/train/train-*.tfrecord,task.validation_data.input_path=$OUT/tfrecords/val/val-*.tfrecord" \
    > "$OUT/pretrain.log" 2>&1 || { tail -50 "$OUT/pretrain.log"; exit 1; }
pretrain_s=$(( $(date +%s) - pretrain_start ))
$PY -m cvrl.run_summary --model_dir="$OUT/pretrain"
echo "pretraining: ${pretrain_s}s; log $OUT/pretrain.log; TensorBoard: tensorboard --logdir=$OUT/pretrain"
echo "demo: done in $(( $(date +%s) - start ))s"
