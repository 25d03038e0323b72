#!/usr/bin/env bash
# format.sh — apply .clang-format to every C file in the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
CF=$(command -v clang-format-14 || command -v clang-format)
find src include tests $(ls -d examples 2>/dev/null) -name '*.[ch]' -print0 | xargs -0 "$CF" -i --style=file
