#!/bin/sh
# Pretrains the molecule zoo entries one after another (each resumes from its last.pt).
set -e
cd "$(dirname "$0")/../.."
for name in gine-attrmask-moses gine-graphmae-moses gine-higmae-moses; do
  .venv/bin/graphssl pretrain --config benchmarks/zoo/$name.yaml
done
