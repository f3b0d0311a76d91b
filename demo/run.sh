#!/usr/bin/env bash
# README's first command: set up, train the demo gallery, open the Stagnation tab.
#   bash demo/run.sh              train (or reuse) every run, report, serve TensorBoard
#   bash demo/run.sh --no-serve   train and report only
#   PORT=6007 bash demo/run.sh    serve on another port
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${TB_STAGNATION_VENV:-.venv}"
LOGDIR="demo/logs"
PORT="${PORT:-6006}"
SERVE=1
for arg in "$@"; do
  case "$arg" in
    --no-serve) SERVE=0 ;;
    *) echo "usage: bash demo/run.sh [--no-serve]" >&2; exit 2 ;;
  esac
done

if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
fi
# Any TensorFlow the venv already has (tensorflow, tensorflow-cpu, tf-nightly)
# is kept; only a venv without one gets tensorflow-cpu.
extras="demo"
"$VENV/bin/python" -c "import tensorflow" >/dev/null 2>&1 || extras="demo,cpu"
echo "== installing tb-stagnation[$extras]"
"$VENV/bin/pip" install -q ".[$extras]"

echo "== training the gallery into $LOGDIR (runs already trained are reused)"
"$VENV/bin/python" demo/gallery.py --logdir "$LOGDIR"

echo "== tb-stagnation report $LOGDIR"
"$VENV/bin/python" -m tb_stagnation.cli report "$LOGDIR" || true  # exit 1 = stalls found, as intended

if [ "$SERVE" = 1 ]; then
  echo
  echo "Open http://localhost:$PORT/#stagnation  (Ctrl-C stops TensorBoard)"
  exec "$VENV/bin/python" -m tensorboard.main --logdir "$LOGDIR" --port "$PORT"
fi
