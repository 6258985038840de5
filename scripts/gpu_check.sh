#!/usr/bin/env bash
# GPU checks (precision, XLA, multi-GPU training, memory) as one script (about 9 minutes on one GPU).
#   bash scripts/gpu_check.sh [OUT_DIR]      # log: OUT_DIR/gpu_check.log
#
# Needs a machine with an NVIDIA GPU and the project's environment (.venv, set
# up by scripts/ensure_venv.sh, which needs PyPI). Note: the accelerator lent
# to this project's sessions has no TensorFlow and no network, and TF 2.20 +
# Model Garden wheels are far over what a session can carry there, so this
# script is for a GPU machine of your own (or a later device image with TF).
#
# 1. The train step (benchmarks/train_step.py), R3D-50 16x224x224, batch 8:
#    float32 / bfloat16 / float16 (dynamic loss scaling), XLA off and on:
#    examples/s, peak device memory, ours vs Model Garden (XLA rows: ours).
# 2. runlocal smoke test of cvrl_pretrain_k400_200ep, then the same recipe at a
#    real batch (32) for 20 steps with precision auto (bfloat16 on an H100/
#    H200/A100, float16 on a V100/T4), with Algorithm 1's per-pixel work on
#    the host and then on the GPU (augment_on: device): examples/s from
#    TensorBoard.
# 3. A short cvrl_pretrain_demo run with precision auto (60 steps).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${1:-${OUT:-gpu_check_output}}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
PY=${PYTHON:-.venv/bin/python}
# Memory grown on demand, so that nvidia-smi's reading is what a run needs.
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONUNBUFFERED=1 TF_FORCE_GPU_ALLOW_GROWTH=true
say() { echo "== $*" | tee -a "$LOG"; }
# Peak GPU memory of whatever runs between watch_memory FILE and peak_memory FILE.
watch_memory() {
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 \
      > "$1" 2>/dev/null & WATCH=$!
}
peak_memory() {
  kill "$WATCH" 2>/dev/null; wait "$WATCH" 2>/dev/null
  echo "peak GPU memory $(sort -n "$1" 2>/dev/null | tail -1) MiB"
}
: > "$LOG"
say "$(date -u) $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1)"
$PY -c "import tensorflow as tf; print('TF', tf.__version__, tf.config.list_physical_devices('GPU'))" 2>&1 | tail -1 | tee -a "$LOG"

say "1/3 train step, R3D-50 16x224x224 batch 8"
for precision in float32 bfloat16 float16; do
  timeout 150 $PY benchmarks/train_step.py --sizes=224 --no_small --batch=8 \
      --steps=10 --precision=$precision 2>&1 | tail -2 | tee -a "$LOG"
  timeout 100 $PY benchmarks/train_step.py --sizes=224 --no_small --batch=8 \
      --steps=10 --precision=$precision --xla --only_ours 2>&1 | tail -1 | tee -a "$LOG"
done

say "2/3 cvrl_pretrain_k400_200ep: runlocal, then batch 32 x 20 steps, precision auto"
DATA="$OUT/data"
if [ ! -d "$DATA/tfrecords/train" ]; then
  $PY -m tfrecords_tools.make_synthetic --output_dir="$DATA/videos" \
      --videos_per_class=8 --num_frames=48 --size=256 --fps=25 >/dev/null 2>&1
  for split in train val; do
    $PY -m tfrecords_tools.convert_videos --input_csv="$DATA/videos/$split.csv" \
        --video_root="$DATA/videos" --split=$split \
        --label_map="$DATA/videos/label_map.txt" \
        --output_dir="$DATA/tfrecords/$split" --num_shards=4 >/dev/null 2>&1
  done
fi
paths="task.train_data.input_path=$DATA/tfrecords/train/*.tfrecord,task.validation_data.input_path=$DATA/tfrecords/val/*.tfrecord"
for run in runlocal batch32_host batch32_device; do
  extra=''
  [ $run != runlocal ] && extra=",task.train_data.global_batch_size=32,task.train_data.crop_size=224,trainer.train_steps=20,trainer.steps_per_loop=10,trainer.summary_interval=10,trainer.checkpoint_interval=20,trainer.validation_interval=20,task.train_data.augment_on=${run#batch32_}"
  rm -rf "$OUT/k400_$run"
  start=$(date +%s)
  watch_memory "$OUT/k400_$run.mem"
  timeout 170 $PY -m cvrl.tools.train --experiment=cvrl_pretrain_k400_200ep \
      --mode=train_and_eval --model_dir="$OUT/k400_$run" \
      --config_file=experiments/pretrain_k400_r3d50_200ep.yaml \
      --config_file=experiments/runlocal.yaml \
      --params_override="$paths$extra" > "$OUT/k400_$run.log" 2>&1
  rc=$?
  memory=$(peak_memory "$OUT/k400_$run.mem")
  grep -h "precision:" "$OUT/k400_$run.log" | tail -1 | tee -a "$LOG"
  say "k400_$run: exit $rc in $(( $(date +%s) - start )) s; $memory"
  $PY - "$OUT/k400_$run/train" <<'PY' 2>/dev/null | tee -a "$LOG"
import sys
from cvrl.eval import reports
scalars = reports.read_scalars(sys.argv[1])
rate = scalars.get('examples_per_second', {})
print('examples/s by step:', {k: round(v, 1) for k, v in sorted(rate.items())})
PY
done

say "3/3 cvrl_pretrain_demo, 60 steps, precision auto"
DEMO="$OUT/demo_data"
if [ ! -d "$DEMO/tfrecords/train" ]; then
  $PY -m tfrecords_tools.make_synthetic --output_dir="$DEMO/videos" \
      --videos_per_class=40 --num_frames=48 --size=64 --fps=12 --appearances=1 >/dev/null 2>&1
  for split in train val; do
    $PY -m tfrecords_tools.convert_videos --input_csv="$DEMO/videos/$split.csv" \
        --video_root="$DEMO/videos" --split=$split --short_side=0 \
        --label_map="$DEMO/videos/label_map.txt" \
        --output_dir="$DEMO/tfrecords/$split" --num_shards=4 >/dev/null 2>&1
  done
fi
rm -rf "$OUT/demo"
start=$(date +%s)
watch_memory "$OUT/demo.mem"
timeout 120 $PY -m cvrl.tools.train --experiment=cvrl_pretrain_demo --mode=train \
    --model_dir="$OUT/demo" --params_override="task.train_data.input_path=$DEMO/tfrecords/train/*.tfrecord,task.validation_data.input_path=$DEMO/tfrecords/val/*.tfrecord,runtime.mixed_precision_dtype=auto,trainer.train_steps=60" \
    > "$OUT/demo.log" 2>&1
rc=$?
say "demo: exit $rc in $(( $(date +%s) - start )) s; $(peak_memory "$OUT/demo.mem"); $(grep -h 'precision:' "$OUT/demo.log" | tail -1)"
$PY -m cvrl.tools.run_summary --model_dir="$OUT/demo" 2>&1 | tee -a "$LOG"
say "done: $LOG"
