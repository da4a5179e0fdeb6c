#!/usr/bin/env bash
# Usage: scripts/test_models.sh <checkpoint-directory> [evaluate.py options]
# Evaluates the newest checkpoint at scale 450 and writes results/normals/<model>.json.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 <checkpoint-directory> [evaluate.py options]" >&2
  exit 2
fi
HERE="$(cd "$(dirname "$0")/.." && pwd)"
CKPT="$1"; shift
exec python "$HERE/evaluate.py" --ckpt "$CKPT" "$@"
