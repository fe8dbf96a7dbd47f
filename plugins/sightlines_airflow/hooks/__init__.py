"""Hooks: Airflow connections turned into what a step needs (storage credentials, backend clients)."""

from .storage import SightlinesStorageHook

__all__ = ["SightlinesStorageHook"]
