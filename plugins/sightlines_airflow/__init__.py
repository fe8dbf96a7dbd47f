"""Airflow integration of Sightlines: compute backends, hooks, operators, triggers, the DAG factory and a UI plugin.

Everything Airflow-specific lives here (DESIGN §1); the product itself is the
``sightlines`` package, which runs without Airflow. The layout follows the
Amazon provider:

``backends/``
    where a step runs: :class:`~sightlines_airflow.backends.local.LocalBackend`
    (a subprocess of the worker) and :class:`~sightlines_airflow.backends.mesos.MesosBackend`
    (a Mesos task); all share the small interface of
    :class:`~sightlines_airflow.backends.base.ComputeBackend`.
``hooks/``
    Airflow connections -> what a step needs (storage credentials, the Mesos master).
``operators/``
    :class:`~sightlines_airflow.operators.step.SightlinesStepOperator` (thin:
    submit, wait or defer, map the outcome) and the fleet operators.
``triggers/``
    serialisable triggers for the deferrable paths; the triggerer imports them
    from this installed package, never from the DAG folder.
:mod:`~sightlines_airflow.dag_factory`
    ``build_client_dag`` and ``build_fleet_dag``.
:mod:`~sightlines_airflow.plugin`
    ``SightlinesPlugin``: a read-only page of run records and fleet status.

Importing this package imports nothing from Airflow, so DAG files stay fast to parse.
"""

__all__: list[str] = []
