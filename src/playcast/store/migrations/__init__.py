"""The Alembic environment of the store: env.py and the revisions in versions/, applied by store/migrate.py.

Nothing here opens a database; revisions never import the models (each is a frozen step)."""

from __future__ import annotations

from pathlib import Path

DIRECTORY = Path(__file__).resolve().parent
