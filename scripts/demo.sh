#!/usr/bin/env bash
# The main job, CPU only, no network: generate the synthetic motion dataset as
# real mp4 files, convert it to TFRecords with the real converter, inspect it.
# Everything goes to demo_output/ (or $1).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/ensure_venv.sh
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
OUT=${1:-demo_output}
PY=.venv/bin/python
start=$(date +%s)

echo "== 1/3 synthetic videos -> $OUT/videos"
$PY -m tfrecords_tools.make_synthetic --output_dir="$OUT/videos" \
    --videos_per_class=40 --num_frames=48 --size=64 --fps=12

echo "== 2/3 convert to TFRecords -> $OUT/tfrecords"
for split in train val; do
  $PY -m tfrecords_tools.convert_videos \
      --input_csv="$OUT/videos/$split.csv" --video_root="$OUT/videos" \
      --split="$split" --label_map="$OUT/videos/label_map.txt" \
      --output_dir="$OUT/tfrecords/$split" --short_side=0 --num_shards=4
done

echo "== 3/3 inspect and verify"
for split in train val; do
  $PY -m tfrecords_tools.inspect_tfrecords \
      --pattern="$OUT/tfrecords/$split/$split-*.tfrecord" --verify
done
echo "demo: done in $(( $(date +%s) - start ))s; TFRecords in $OUT/tfrecords"
