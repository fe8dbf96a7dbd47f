"""``python -m sightlines`` runs the CLI."""

from .cli import main

raise SystemExit(main())
