"""Sightlines DAGs: one per client of the registry (``sightlines__{client}``) and the fleet DAG.

The registry is ``registry.json`` under ``$SIGHTLINES_ROOT`` (one small file
read; see ``sightlines clients add``). All logic lives in the installed
``sightlines_airflow`` package; a running task builds only its own DAG.

With thousands of clients, split them over several files so that the DAG
processor parses them in parallel: file ``i`` of ``n`` calls
``build_registry_dags(only_dag_id=..., shard=i, shards=n)``.
"""

from airflow.sdk import get_parsing_context

from sightlines_airflow.dag_factory import build_registry_dags

globals().update(build_registry_dags(only_dag_id=get_parsing_context().dag_id))
