"""Lazy import of the modules that register targets, attacks and defenses by name.

Registries import their built-in modules on first use rather than at start-up (torch, opacus and
flwr are heavy). A module that is absent is skipped, so an optional plugin stays unregistered; an
ImportError raised *inside* a present module is a real bug and is never hidden.
"""

from __future__ import annotations

import importlib


def import_plugin(module: str) -> None:
    """Import `module` (which registers itself); do nothing when that module itself does not exist."""
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
