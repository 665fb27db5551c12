#!/usr/bin/env bash
# Rebuild the committed EuroSAT checkpoints in codecs/ (CPU, one thread per architecture).
# One rate point is trained fully (q3, λ = 0.0067), the others are fine-tuned from it.
# Usage: scripts/train_eurosat_checkpoints.sh ARCH DATA_DIR BASE_STEPS FINETUNE_STEPS [FINETUNE_LR] [SKIP_BASE]
# Each card in codecs/<arch>/ records the exact command that produced it.
set -euo pipefail
arch=$1 data=$2 base_steps=$3 tune_steps=$4 tune_lr=${5:-5e-4} skip_base=${6:-}
common=(--arch "$arch" --data-dir "$data" --threads 1 --batch-size 16 --val-every 500 --out codecs --force)
if [ -z "$skip_base" ]; then
  python -m bench train "${common[@]}" --lr 5e-4 --lmbda 0.0067 --quality 3 --steps "$base_steps"
fi
for pair in "1 0.0018" "5 0.025" "7 0.0932"; do
  set -- $pair
  python -m bench train "${common[@]}" --lr "$tune_lr" --lmbda "$2" --quality "$1" --steps "$tune_steps" \
    --init "codecs/$arch/$arch-q3.pt"
done
