"""Hooks: Airflow connections turned into what a step needs (storage credentials, the Mesos master)."""

from .mesos import MesosHook
from .storage import SightlinesStorageHook

__all__ = ["MesosHook", "SightlinesStorageHook"]
