#!/usr/bin/env bash
# One-shot service of compose.yaml: Airflow's metadata database, the `sightlines` pool, and the two
# connections of the demo (their JSON comes from the environment, i.e. from compose.yaml).
set -euo pipefail

airflow db migrate
# step tasks take pool slots = their cpus while they submit; deferred (waiting on Mesos) they hold none
airflow pools set sightlines "${SIGHTLINES_POOL_SLOTS:-8}" "Sightlines steps"
# re-created on every start, so that compose.yaml stays the one place where they are defined
for conn in sightlines_mesos sightlines_s3; do
  airflow connections delete "$conn" >/dev/null 2>&1 || true
done
airflow connections add sightlines_mesos --conn-json "${SIGHTLINES_MESOS_CONN:?set SIGHTLINES_MESOS_CONN}"
airflow connections add sightlines_s3 --conn-json "${SIGHTLINES_S3_CONN:?set SIGHTLINES_S3_CONN}"
