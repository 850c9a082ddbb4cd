#!/usr/bin/env bash
# Lists every fuzz target as package:FuzzName, for `make fuzz`.
set -euo pipefail
cd "$(dirname "$0")/.."
git ls-files '*_test.go' 2>/dev/null | xargs grep -l '^func Fuzz' 2>/dev/null | while read -r f; do
  dir=./$(dirname "$f")
  grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //' | while read -r name; do
    echo "$dir:$name"
  done
done | sort -u
