#!/usr/bin/env bash
# Print the path of a Python 3.8 interpreter (the image's): the one place this search is written, shared by
# tools/setup_env.sh (make setup) and tools/bench_gpu.py (make bench-gpu), so both pick the same interpreter.
# Usage: tools/find_python38.sh      (env: PYTHON=/path/to/python3.8 to choose one)
# Order: $PYTHON, else pyenv's newest 3.8.x, else python3.8 on PATH; each is run to check it is 3.8.
# Exit status: 0 and the path on stdout; 1 when none is found; 2 when $PYTHON is set but is not a Python 3.8.
set -uo pipefail

is_py38() { [ -n "$1" ] && [ "$("$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = 3.8 ]; }

if [ -n "${PYTHON:-}" ]; then
  if is_py38 "$PYTHON"; then echo "$PYTHON"; exit 0; fi
  exit 2
fi
if command -v pyenv >/dev/null 2>&1; then
  v=$(pyenv versions --bare 2>/dev/null | grep -E '^3\.8(\.[0-9]+)?$' | sort -V | tail -n 1)
  if [ -n "$v" ]; then
    py=$(PYENV_VERSION=$v pyenv which python 2>/dev/null)
    if is_py38 "$py"; then echo "$py"; exit 0; fi
  fi
fi
py=$(command -v python3.8)
if is_py38 "$py"; then echo "$py"; exit 0; fi
exit 1
