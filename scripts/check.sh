#!/usr/bin/env bash
# check.sh — house rules that a compiler does not enforce:
#   banned calls (STYLE.md), unformatted code (.clang-format), and the CLI using
#   anything but the public API (include/sluice/*.h).
set -uo pipefail
cd "$(dirname "$0")/.."
fail=0
files=$(git ls-files 'src/*.c' 'src/*.h' 'include/*.h' 'tests/*.c' 'tests/*.h' 'examples/*.c' 2>/dev/null)
[ -n "$files" ] || files=$(find src include tests examples -name '*.[ch]')

banned=$(grep -nE '\b(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol|atoll|strtok)\s*\(' $files)
if [ -n "$banned" ]; then
    echo "check: banned calls (use snprintf, strtol, memcpy with lengths):" >&2
    echo "$banned" >&2
    fail=1
fi

cli_private=$(grep -nE '#include\s+"' src/cli/*.c src/cli/*.h 2>/dev/null | grep -v -E '"cli/|"[a-z_]+\.h"' )
if [ -n "$cli_private" ]; then
    echo "check: src/cli may only use the public API <sluice/...>:" >&2
    echo "$cli_private" >&2
    fail=1
fi

CF=$(command -v clang-format-14 || command -v clang-format || true)
if [ -n "$CF" ]; then
    bad=""
    for f in $files; do
        "$CF" --style=file "$f" | cmp -s - "$f" || bad="$bad $f"
    done
    if [ -n "$bad" ]; then
        echo "check: not formatted with .clang-format (run scripts/format.sh):$bad" >&2
        fail=1
    fi
else
    echo "check: clang-format not found" >&2
    fail=1
fi
[ $fail = 0 ] && echo "check: ok (banned calls, formatting, public API only in src/cli)"
exit $fail
