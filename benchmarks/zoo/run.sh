#!/bin/sh
# Pretrains zoo entries one after another: the names given, or every benchmarks/zoo/*.yaml.
# Each run resumes from runs/zoo/NAME/last.pt when present, else from a committed state in
# benchmarks/zoo/checkpoints/NAME/last.pt (a run that spans several working days carries its
# state in the repository). Entries already shipped or finished are skipped. After a run,
# `graphssl zoo add runs/zoo/NAME --name NAME ...` makes the entry.
#   benchmarks/zoo/run.sh [NAME ...]
set -e
cd "$(dirname "$0")/../.."
if [ $# -eq 0 ]; then
  set -- $(ls benchmarks/zoo/*.yaml | xargs -n1 basename | sed 's/\.yaml$//')
fi
for name in "$@"; do
  if [ ! -f "benchmarks/zoo/$name.yaml" ]; then echo "no benchmarks/zoo/$name.yaml" >&2; exit 2; fi
  if [ -d "graphssl/zoo/entries/$name" ] || [ -f "runs/zoo/$name/encoder.pt" ]; then continue; fi  # shipped or done
  if [ ! -f "runs/zoo/$name/last.pt" ] && [ -f "benchmarks/zoo/checkpoints/$name/last.pt" ]; then
    mkdir -p "runs/zoo/$name"
    cp "benchmarks/zoo/checkpoints/$name/last.pt" "runs/zoo/$name/last.pt"
  fi
  .venv/bin/graphssl pretrain --config "benchmarks/zoo/$name.yaml"
done
