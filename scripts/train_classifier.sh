#!/usr/bin/env bash
# Train the reference EuroSAT classifier as committed in codecs/classifier/ (CPU, one thread; resumable).
# 1. Screen the candidate networks for SCREEN_EPOCHS each; 2. train the one with the best mean val accuracy
# (originals, JPEG q50, WebP q50) for EPOCHS. Selection uses val only. Reruns resume where they stopped.
# Usage: scripts/train_classifier.sh DATA_DIR [EPOCHS] [SCREEN_EPOCHS] [OUT]
set -euo pipefail
data=$1 epochs=${2:-60} screen_epochs=${3:-4} out=${4:-runs/classifier}
common=(--data-dir "$data" --threads 1 --cache "$out")
for net in resnet-s2-48 resnet-s2-64 resnet-s1-32; do
  [ -f "$out/screen-$net/eurosat.json" ] ||
    python -m bench classifier train "${common[@]}" --network "$net" --epochs "$screen_epochs" --out "$out/screen-$net"
done
best=$(python - "$out" <<'PY'
import json, pathlib, sys
cards = {p.parent.name[len("screen-"):]: json.loads(p.read_text()) for p in pathlib.Path(sys.argv[1]).glob("screen-*/eurosat.json")}
print(max(cards, key=lambda net: sum(cards[net]["val_accuracy"].values())))
PY
)
echo "selected network: $best"
python -m bench classifier train "${common[@]}" --network "$best" --epochs "$epochs" --out "$out/final"
