"""Kept for imports written before `privaudit.registry`: the lazy module import used by every registry.

Registries (privaudit.registry) import their built-in modules on first use rather than at start-up
(torch, opacus and flwr are heavy) and find outside plugins through package entry points.
"""

from __future__ import annotations

from privaudit.registry import PLUGINS_ENV, Registry, allowed_plugins, import_plugin

__all__ = ["PLUGINS_ENV", "Registry", "allowed_plugins", "import_plugin"]
