"""Where the non-code parts of mapservice live, in a source checkout and in an installed wheel.

In the repository, ``templates/``, ``data/`` and ``migrations/`` sit beside the package (as
DESIGN.md lays out); a wheel ships them inside the package (see ``pyproject.toml``).
"""
from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _top(name: str) -> Path:
    installed = PACKAGE_DIR / name
    if installed.is_dir():
        return installed
    return PACKAGE_DIR.parent / name


TEMPLATES_DIR = _top("templates")
DATA_DIR = _top("data")
MIGRATIONS_DIR = _top("migrations")
STATIC_DIR = PACKAGE_DIR / "static"
