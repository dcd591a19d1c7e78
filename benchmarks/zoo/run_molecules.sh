#!/bin/sh
# Pretrains the molecule zoo entries one after another. Each run resumes from its last.pt:
# runs/zoo/NAME/last.pt when present, else the committed benchmarks/zoo/checkpoints/NAME/last.pt
# (a run that spans several working days carries its state in the repository). After a run,
# `graphssl zoo add runs/zoo/NAME --name NAME ...` makes the entry.
set -e
cd "$(dirname "$0")/../.."
for name in gine-attrmask-moses gine-graphmae-moses gine-higmae-moses; do
  if [ -d "graphssl/zoo/entries/$name" ] || [ -f "runs/zoo/$name/encoder.pt" ]; then continue; fi  # shipped or done
  if [ ! -f "runs/zoo/$name/last.pt" ] && [ -f "benchmarks/zoo/checkpoints/$name/last.pt" ]; then
    mkdir -p "runs/zoo/$name"
    cp "benchmarks/zoo/checkpoints/$name/last.pt" "runs/zoo/$name/last.pt"
  fi
  .venv/bin/graphssl pretrain --config "benchmarks/zoo/$name.yaml"
done
