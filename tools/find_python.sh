#!/usr/bin/env bash
# Print the path of a Python interpreter of one minor version: the one place this search is written, shared by
# tools/setup_env.sh (make setup: 3.8 for the legacy stack, 3.11 for the modern one) and tools/bench_gpu.py
# (make bench-gpu), so all of them pick the same interpreter.
# Usage: tools/find_python.sh [VERSION]      (VERSION default 3.8; env: PYTHON=/path/to/python to choose one)
# Order: $PYTHON, else pyenv's newest VERSION.x, else pythonVERSION on PATH; each is run to check its version.
# Exit status: 0 and the path on stdout; 1 when none is found; 2 when $PYTHON is set but is another version.
set -uo pipefail
want=${1:-3.8}

minor() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null; }
is_wanted() { [ -n "$1" ] && [ "$(minor "$1")" = "$want" ]; }

if [ -n "${PYTHON:-}" ]; then
  if is_wanted "$PYTHON"; then echo "$PYTHON"; exit 0; fi
  exit 2
fi
if command -v pyenv >/dev/null 2>&1; then
  v=$(pyenv versions --bare 2>/dev/null | grep -E "^${want//./\\.}(\\.[0-9]+)?\$" | sort -V | tail -n 1)
  if [ -n "$v" ]; then
    py=$(PYENV_VERSION=$v pyenv which python 2>/dev/null)
    if is_wanted "$py"; then echo "$py"; exit 0; fi
  fi
fi
py=$(command -v "python$want")
if is_wanted "$py"; then echo "$py"; exit 0; fi
exit 1
