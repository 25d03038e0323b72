#!/usr/bin/env bash
# run.sh — install, build, and run the main job: `sluice batch` over the bundled example
# prompts against the embedded mock provider, with a progress bar and a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
mkdir -p out
# A fresh run each time: the results file and its side file (a second run would otherwise
# be refused, or need --resume).
rm -f out/results.jsonl out/results.jsonl.sluice
exec build/release/sluice batch examples/prompts.jsonl -o out/results.jsonl --progress always
