#!/usr/bin/env bash
# Sightlines developer entry point. Every command sets up what it needs first:
# a virtual environment in .venv with the exact versions of requirements.lock.
#
#   ./dev.sh demo      generate demo clients, run the daily job, show one user
#   ./dev.sh test      run the test suite (what CI runs)
#   ./dev.sh airflow   start Airflow standalone (UI) with the demo clients
#   ./dev.sh bench ... run a benchmark script from bench/
#   ./dev.sh sightlines ...   run the CLI inside the environment
set -euo pipefail
cd "$(dirname "$0")"
ROOT_DIR=$(pwd)
VENV=${SIGHTLINES_VENV:-$ROOT_DIR/.venv}
UV_VERSION=0.13.8

find_python() {
  for p in python3.11 python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      echo "$p"; return 0
    fi
  done
  echo "Python 3.11 is required (python3.11 not found on PATH)" >&2
  return 1
}

ensure_env() {
  local stamp
  # the compiled decoder (setup.py, sightlines/_native/*.c) is rebuilt whenever its source changes
  stamp="$VENV/.installed-$(cat requirements.lock pyproject.toml setup.py sightlines/_native/*.c | sha256sum | cut -c1-16)"
  if [ -f "$stamp" ]; then return 0; fi
  echo ">> setting up $VENV (pinned by requirements.lock)" >&2
  if [ ! -x "$VENV/bin/python" ]; then
    "$(find_python)" -m venv "$VENV"
  fi
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
  # --compile-bytecode: every Airflow task starts fresh interpreters; without .pyc files (and with
  # PYTHONDONTWRITEBYTECODE set, as on some machines) each one recompiles Airflow for seconds
  "$VENV/bin/uv" pip install --quiet --compile-bytecode --python "$VENV/bin/python" -r requirements.lock
  "$VENV/bin/uv" pip install --quiet --python "$VENV/bin/python" --no-deps -e .
  rm -f "$VENV"/.installed-*
  touch "$stamp"
}

cmd=${1:-help}
shift || true
case "$cmd" in
  demo)
    ensure_env
    export PATH="$VENV/bin:$PATH"
    exec "$VENV/bin/python" -m sightlines demo "$@"
    ;;
  test)
    ensure_env
    export PATH="$VENV/bin:$PATH"
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  airflow)
    ensure_env
    export PATH="$VENV/bin:$PATH"
    exec "$ROOT_DIR/scripts/airflow-standalone.sh" "$@"
    ;;
  bench)
    ensure_env
    export PATH="$VENV/bin:$PATH"
    script=$1; shift
    exec "$VENV/bin/python" "bench/$script" "$@"
    ;;
  sightlines)
    ensure_env
    export PATH="$VENV/bin:$PATH"
    exec "$VENV/bin/python" -m sightlines "$@"
    ;;
  setup)
    ensure_env
    ;;
  *)
    sed -n '2,10p' "$0"
    ;;
esac
