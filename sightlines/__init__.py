"""Sightlines: every day, for every user of every client brand, a value and a k-tile per sightline.

The package is pure Python and runs without Airflow. Start with the CLI
(``sightlines --help``) or the step functions in :mod:`sightlines.pipeline`.
"""

__version__ = "0.1.0"

from .errors import SightlinesError  # noqa: E402
from .result import StepResult  # noqa: E402
from .storage import ClientStore, Storage  # noqa: E402

__all__ = ["Storage", "ClientStore", "StepResult", "SightlinesError", "__version__"]
