#!/usr/bin/env bash
# run.sh — install, build, and run the main job: `sluice batch` over the bundled example
# prompts against the embedded mock provider, with a progress bar and a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
mkdir -p out
exec build/release/sluice chat "why is the sky blue?"
