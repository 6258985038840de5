#!/usr/bin/env bash
# The main job, CPU only, no network: generate the synthetic motion dataset as
# real mp4 files, convert it to TFRecords with the real converter, inspect it,
# pretrain the small R3D with CVRL (cvrl_pretrain_small: the recipe for a small
# dataset of your own, residual frames), print its contrastive loss and accuracy
# against chance, then linear-evaluate the pretrained encoder and, as the
# baseline, the same encoder with random weights, and print both top-1
# accuracies with the margin, and both encoders' retrieval R@1 / R@5.
# Everything goes to demo_output/ (or $1).
# CVRL_DEMO_QUICK=1 runs a few steps of each stage (the end-to-end test);
# CVRL_DEMO_SEED=S pretrains with seed S (init and data order; default 0:
# docs/demo.md gives the spread over seeds 0-2).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/ensure_venv.sh
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
OUT=${1:-demo_output}
PY=.venv/bin/python
start=$(date +%s)
videos_per_class=40 linear_extra=''
seed=${CVRL_DEMO_SEED:-0}
pretrain_extra=",task.init_seed=$seed,task.train_data.seed=$seed"
if [[ "${CVRL_DEMO_QUICK:-0}" == 1 ]]; then
  videos_per_class=8
  pretrain_extra+=',task.train_data.global_batch_size=16,trainer.train_steps=12,trainer.checkpoint_interval=6,trainer.validation_interval=6,trainer.steps_per_loop=6,trainer.summary_interval=6'
  linear_extra=',trainer.train_steps=6,trainer.steps_per_loop=3,trainer.summary_interval=3,trainer.checkpoint_interval=6,trainer.validation_interval=6'
fi

echo "== 1/7 synthetic videos -> $OUT/videos"
$PY -m tfrecords_tools.make_synthetic --output_dir="$OUT/videos" \
    --videos_per_class=$videos_per_class --num_frames=48 --size=64 --fps=12 \
    --appearances=1

echo "== 2/7 convert to TFRecords -> $OUT/tfrecords"
for split in train val; do
  $PY -m tfrecords_tools.convert_videos \
      --input_csv="$OUT/videos/$split.csv" --video_root="$OUT/videos" \
      --split="$split" --label_map="$OUT/videos/label_map.txt" \
      --output_dir="$OUT/tfrecords/$split" --short_side=0 --num_shards=4
done

echo "== 3/7 inspect and verify"
for split in train val; do
  $PY -m tfrecords_tools.inspect_tfrecords \
      --input_path="$OUT/tfrecords/$split/$split-*.tfrecord" --verify
done
data="task.train_data.input_path=$OUT/tfrecords/train/train-*.tfrecord,task.validation_data.input_path=$OUT/tfrecords/val/val-*.tfrecord"

source scripts/train_job.sh  # run NAME ARGS...

echo "== 4/7 CVRL pretraining (cvrl_pretrain_small: R3D-14, 16x32x32 residual frames, seed $seed) -> $OUT/pretrain"
pretrain_start=$(date +%s)
run pretrain --experiment=cvrl_pretrain_small --params_override="$data$pretrain_extra"
pretrain_s=$(( $(date +%s) - pretrain_start ))
$PY -m cvrl.tools.run_summary --model_dir="$OUT/pretrain"

echo "== 5/7 linear evaluation of the CVRL encoder -> $OUT/linear_cvrl"
run linear_cvrl --experiment=cvrl_linear_eval_small \
    --params_override="$data,task.init_checkpoint=$OUT/pretrain$linear_extra"

echo "== 6/7 linear evaluation of the random encoder -> $OUT/linear_random"
run linear_random --experiment=cvrl_linear_eval_small \
    --params_override="$data,task.init_checkpoint=,task.random_backbone=true$linear_extra"

echo "== 7/7 features of both encoders -> retrieval, projector ($OUT/features)"
for encoder in cvrl random; do
  checkpoint=$OUT/pretrain; [[ $encoder == random ]] && checkpoint=random_init
  extra=()
  [[ $encoder == cvrl ]] && extra=(--projector_dir="$OUT/projector"
      --projector_split=val --label_map="$OUT/tfrecords/val/label_map.txt")
  # Both splits with one backbone, built and restored once.
  $PY -m cvrl.tools.export_features --experiment=cvrl_linear_eval_small \
      --checkpoint="$checkpoint" --num_clips=4 --splits=train,val \
      --input_path="$OUT/tfrecords/{split}/{split}-*.tfrecord" \
      --output_file="$OUT/features/${encoder}_{split}.npz" "${extra[@]}" \
      > "$OUT/features_$encoder.log" 2>&1 \
    || { tail -20 "$OUT/features_$encoder.log"; exit 1; }
done

echo
echo "Linear evaluation on the held-out synthetic videos (8 classes, chance 12.50):"
$PY -m cvrl.tools.eval_report --runs="CVRL=$OUT/linear_cvrl,random=$OUT/linear_random" --margin
echo "Retrieval: held-out videos query the training videos (cosine, features averaged over 4 clips):"
for encoder in cvrl random; do
  name=CVRL; [[ $encoder == random ]] && name=random
  $PY -m cvrl.tools.retrieval --name=$name --k=1,5 \
      --train="$OUT/features/${encoder}_train.npz" --test="$OUT/features/${encoder}_val.npz"
done
echo "Linear probe of the same features (L-BFGS, standardised, penalty chosen on a split of train):"
for encoder in cvrl random; do
  name=CVRL; [[ $encoder == random ]] && name=random
  printf '%-10s ' "$name"
  $PY -m cvrl.tools.probe --train="$OUT/features/${encoder}_train.npz" \
      --test="$OUT/features/${encoder}_val.npz" 2> "$OUT/probe_$encoder.log" \
    || { tail -20 "$OUT/probe_$encoder.log"; exit 1; }
done
echo "pretraining: ${pretrain_s}s; logs: $OUT/*.log"
echo "TensorBoard: tensorboard --logdir=$OUT (embedding projector: --logdir=$OUT/projector)"
echo "demo: done in $(( $(date +%s) - start ))s"
