#!/usr/bin/env bash
# Airflow standalone with the Sightlines DAGs, on one machine.
#
#   ./dev.sh airflow                 start Airflow (scheduler, triggerer, DAG processor, API server + UI)
#   ./dev.sh airflow ARGS...         run `airflow ARGS...` against the same home, e.g.
#                                    ./dev.sh airflow backfill create --dag-id sightlines__acme-outdoor \
#                                        --from-date 2026-11-20 --to-date 2026-11-24 --max-active-runs 1
#
#   AIRFLOW_HOME     ./airflow-home (SQLite database, logs, generated admin password)
#   SIGHTLINES_ROOT  ./data         (storage root: registry.json and the clients' data)
#   AIRFLOW_PORT     8080
#   SIGHTLINES_DEMO_USERS  3000 (users per demo client, first start only)
#   SIGHTLINES_DEMO_DAYS   3    (snapshots per demo client, ending yesterday, first start only)
#
# On first start, if the registry has no clients, three small demo clients are
# generated (snapshots for the last three days, so the two before yesterday can
# be backfilled) and registered. Client DAGs are created unpaused, so
# each demo client runs its latest day (yesterday) at once; the fleet DAG then
# reports on them. The Sightlines pages are at /sightlines/ (also under
# "Browse" in the UI). Stop with Ctrl-C.
set -euo pipefail
ROOT_DIR=$(cd "$(dirname "$0")/.." && pwd)
VENV=${SIGHTLINES_VENV:-$ROOT_DIR/.venv}
export PATH="$VENV/bin:$PATH"

export AIRFLOW_HOME=${AIRFLOW_HOME:-$ROOT_DIR/airflow-home}
mkdir -p "$AIRFLOW_HOME"
AIRFLOW_HOME=$(cd "$AIRFLOW_HOME" && pwd)
export SIGHTLINES_ROOT=${SIGHTLINES_ROOT:-$ROOT_DIR/data}
case "$SIGHTLINES_ROOT" in
  *://*) ;;                                                   # s3://bucket/prefix stays as it is
  *) mkdir -p "$SIGHTLINES_ROOT"; SIGHTLINES_ROOT=$(cd "$SIGHTLINES_ROOT" && pwd) ;;  # workers need an absolute path
esac
PORT=${AIRFLOW_PORT:-8080}
CORES=$(nproc 2>/dev/null || echo 2)

export AIRFLOW__CORE__DAGS_FOLDER="$ROOT_DIR/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
# SQLite allows one writer at a time: wait up to 60 s for the lock instead of failing
# (e.g. `airflow backfill create` while the scheduler writes)
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$AIRFLOW_HOME/airflow.db?timeout=60"
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=${AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION:-False}
# one DAG file builds every client's DAG: give it time (see bench/bench_dag_parse.py)
export AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT=${AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT:-120}
export AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT=${AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT:-180}
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=${AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL:-30}
export AIRFLOW__API__PORT=$PORT
# task processes reach the API server here (Airflow's default assumes port 8080)
export AIRFLOW__API__BASE_URL=${AIRFLOW__API__BASE_URL:-http://localhost:$PORT}
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=${AIRFLOW__CORE__EXECUTION_API_SERVER_URL:-http://localhost:$PORT/execution/}
export AIRFLOW__CORE__LAZY_LOAD_PLUGINS=False
# LightGBM's OpenMP threads must not busy-wait on a laptop's few cores
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

say() { printf '>> %s\n' "$*" >&2; }

# -- a CLI command against this Airflow ---------------------------------------------
if [ $# -gt 0 ]; then
  exec airflow "$@"
fi

# -- demo clients ------------------------------------------------------------------
if [ -z "$(sightlines clients list --root "$SIGHTLINES_ROOT" 2>/dev/null)" ]; then
  say "no clients in $SIGHTLINES_ROOT: generating the demo clients (those of ./dev.sh demo), snapshots up to yesterday"
  SIGHTLINES_LOG_LEVEL=WARNING sightlines demo --generate-only --root "$SIGHTLINES_ROOT" \
    --users "${SIGHTLINES_DEMO_USERS:-3000}" --days "${SIGHTLINES_DEMO_DAYS:-3}"
fi

# -- database and pool --------------------------------------------------------------
say "migrating the Airflow database in $AIRFLOW_HOME"
airflow db migrate >/dev/null
# every step task takes pool_slots = its cpus from this pool: one slot per core
airflow pools set sightlines "$CORES" "Sightlines steps: one slot per core of the workers" >/dev/null
say "pool 'sightlines' has $CORES slot(s)"

# -- start --------------------------------------------------------------------------
LOG="$AIRFLOW_HOME/standalone.log"
say "starting airflow standalone (output in $LOG)"
# its own process group, so that stopping reaches the scheduler, api-server, triggerer and workers too
set -m
airflow standalone >"$LOG" 2>&1 &
PID=$!
set +m
stop() {
  trap - INT TERM
  say "stopping Airflow (process group $PID)"
  kill -TERM -- "-$PID" 2>/dev/null || true
  for _ in $(seq 1 30); do kill -0 "$PID" 2>/dev/null || break; sleep 1; done
  kill -KILL -- "-$PID" 2>/dev/null || true
  exit 0
}
trap stop INT TERM

PASSWORDS="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
for _ in $(seq 1 180); do
  if ! kill -0 "$PID" 2>/dev/null; then
    say "airflow standalone exited; last lines of $LOG:"; tail -n 40 "$LOG" >&2; exit 1
  fi
  if [ -s "$PASSWORDS" ] && curl -fsS -o /dev/null "http://localhost:$PORT/api/v2/monitor/health" 2>/dev/null; then
    break
  fi
  sleep 2
done
# the days before yesterday, which have demo snapshots to backfill
read -r FROM TO < <(python -c 'import datetime as d; t = d.datetime.now(d.timezone.utc).date(); print(t - d.timedelta(days=3), t - d.timedelta(days=2))')
FIRST=$(sightlines clients list --root "$SIGHTLINES_ROOT" 2>/dev/null | head -n 1 | cut -d' ' -f1)
PASSWORD=$(python -c 'import json,sys; print(json.load(open(sys.argv[1])).get("admin", "?"))' "$PASSWORDS" 2>/dev/null || echo "?")
cat >&2 <<EOF

  Airflow:     http://localhost:$PORT
  login:       admin / $PASSWORD   (from $PASSWORDS)
  Sightlines:  http://localhost:$PORT/sightlines/   (and "Browse > Sightlines" in the UI)
  storage:     $SIGHTLINES_ROOT
  clients:     $(sightlines clients list --root "$SIGHTLINES_ROOT" 2>/dev/null | cut -d' ' -f1 | tr '\n' ' ')
  CLI:         ./dev.sh airflow dags list        (any airflow command, same home and database)
  backfill:    ./dev.sh airflow backfill create --dag-id sightlines__${FIRST:-CLIENT} \\
                 --from-date $FROM --to-date $TO --max-active-runs 1
  log:         $LOG   (Ctrl-C stops everything)

EOF
wait "$PID" || true
