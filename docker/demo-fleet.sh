#!/usr/bin/env bash
# One-shot service of compose.yaml: three synthetic demo clients in storage ($SIGHTLINES_ROOT, on MinIO),
# registered, and the whole fleet moved to the mesos backend. Idempotent: existing clients are kept.
set -euo pipefail

DAY=$(python -c 'import datetime as d; print(d.datetime.now(d.timezone.utc).date() - d.timedelta(days=1))')
if [ -z "$(sightlines clients list 2>/dev/null)" ]; then
  echo ">> generating 3 demo clients for $DAY in $SIGHTLINES_ROOT"
  seed=1
  for client in demo-apparel demo-books demo-garden; do
    sightlines generate --client "$client" --users "${SIGHTLINES_DEMO_USERS:-2000}" --date "$DAY" --seed "$seed"
    seed=$((seed + 1))
  done
  sightlines clients add demo-apparel demo-books demo-garden \
    --config '{"training": {"depths": [3, 5], "learning_rates": [0.1, 0.2], "folds": 3}}'
fi

# the one setting that moves every client (without a backend of its own) to Mesos
sightlines clients fleet --backend mesos
# how the DAGs run the steps: storage credentials from the sightlines_s3 connection, small memory for a laptop
python - <<'PY'
from sightlines.registry import set_fleet

set_fleet(None, airflow={"aws_conn_id": "sightlines_s3", "pool": "sightlines",
                         "settings": {"*": {"memory_mb": 1536}}})
PY
sightlines clients list
