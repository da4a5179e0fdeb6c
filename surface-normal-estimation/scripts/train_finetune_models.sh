#!/usr/bin/env bash
# Usage: scripts/train_finetune_models.sh <pretrained-model-path> <checkpoint-directory> [train.py options]
# Trains the PPM decoder over the frozen, dilated encoder with the paper's schedule
# (90 x 150 iterations of 2 images, lr 0.02 poly 0.9). Rerun to resume.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 <pretrained-model-path> <checkpoint-directory> [train.py options]" >&2
  exit 2
fi
HERE="$(cd "$(dirname "$0")/.." && pwd)"
WEIGHTS="$1"; CKPT="$2"; shift 2
exec python "$HERE/train.py" --weights "$WEIGHTS" --ckpt "$CKPT" "$@"
