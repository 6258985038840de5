# Sourced by the demo scripts (after they set OUT and PY).
# run NAME ARGS...: one `cvrl.tools.train` job in $OUT/NAME, its log in
# $OUT/NAME.log; on failure, the log's tail and exit 1.
run() {
  local name=$1; shift
  rm -rf "${OUT:?}/$name"
  $PY -m cvrl.tools.train --mode=train_and_eval --model_dir="$OUT/$name" "$@" \
      > "$OUT/$name.log" 2>&1 || { tail -50 "$OUT/$name.log"; exit 1; }
}
