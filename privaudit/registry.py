"""One registry type for every extension point: targets, attacks, defenses, report formats, charts.

A `Registry` maps names to what they name (an attack class, a target factory, a report format...).
Three sources fill it, and a lookup tries them in this order:

1. *Decorators*: `@registry.register("pii")` (or the public wrappers `register_attack`,
   `register_target`, `register_defense`, `report_format`, `chart_kind`) at import of a module.
2. *Built-in modules*: `builtins` maps each built-in name to the module that registers it, which
   is imported the first time that name is asked for: torch, opacus and flwr are heavy, and a CLI
   start or a spec check must not pay for them. Listing names reads the map, imports nothing.
3. *Outside plugins*: package entry points in the registry's group, as pytest's and simonw/llm's
   plugins are found. An installed distribution declares, in its own pyproject.toml,

       [project.entry-points."privaudit.attacks"]
       canary_echo = "my_package.attack:CanaryEcho"

   and `canary_echo` becomes an attack that an audit TOML can name. The entry point may name the
   object itself (registered under the entry point's name, which must be the object's own `name`
   where it has one) or a module that registers it by decorator. A plugin is imported only when
   its name is looked up (or every name is needed), so a broken plugin breaks only what uses it.

`PRIVAUDIT_PLUGINS` limits which outside plugins load, so a CI run is reproducible whatever else
is installed: unset = every installed plugin; `none` or empty = built-ins only; a comma-separated
list = the entry points whose name, or whose distribution's name, is listed. An entry point named
like a built-in is ignored with a warning (built-ins win), so installing a package never silently
swaps the attack a gate relies on.
"""

from __future__ import annotations

import importlib
import os
import re
import threading
import types
import warnings
from importlib.metadata import EntryPoint, entry_points
from typing import Callable, Generic, Mapping, TypeVar

from privaudit.errors import InputError

T = TypeVar("T")
PLUGINS_ENV = "PRIVAUDIT_PLUGINS"
Validator = Callable[[str, T], None]


def import_plugin(module: str) -> None:
    """Import `module` (which registers itself); do nothing when that module itself does not exist.

    An absent module leaves its names unregistered (an optional part not installed); an ImportError
    raised *inside* a present module is a real bug and is never hidden.
    """
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise


def _normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them (`My_Plugin` == `my-plugin`)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def allowed_plugins() -> frozenset[str] | None:
    """The names `PRIVAUDIT_PLUGINS` allows (entry-point or normalized distribution names); None = all."""
    raw = os.environ.get(PLUGINS_ENV)
    if raw is None:
        return None
    names = {x.strip() for x in raw.split(",") if x.strip()}
    return frozenset() if names <= {"none"} else frozenset(names | {_normalize(n) for n in names})


def _dist_name(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return str(getattr(dist, "name", None) or "?")


def _describe(ep: EntryPoint) -> str:
    return f"plugin '{ep.name}' ({ep.group} = {ep.value}, from {_dist_name(ep)})"


class Registry(Generic[T]):
    """Names -> registered objects of one kind, filled by decorators, built-in modules and entry points.

    `kind` names the kind in messages ("attack", "target scheme"); `group` is the entry-point
    group (None: no outside plugins of their own, e.g. fingerprints that come with a target's
    module); `validate(name, obj)` raises TypeError/ValueError for an object that does not fit the
    contract; `sort=False` lists names in the built-in map's order, then the others as registered
    (report formats are written in that order).
    """

    def __init__(self, kind: str, group: str | None = None, builtins: Mapping[str, str] | None = None,
                 validate: Validator | None = None, sort: bool = True) -> None:
        self.kind = kind
        self.group = group
        self.builtins: dict[str, str] = dict(builtins or {})
        self._validate = validate
        self._sort = sort
        self._items: dict[str, T] = {}
        self._plugins: dict[str, list[EntryPoint]] | None = None  # name -> entry points (found lazily)
        # Guards the dicts only: no import runs under it (a module importing on another thread
        # registers through `add`, which would wait for a lock held across an import: deadlock).
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, group={self.group!r}, {len(self._items)} loaded)"

    # -- registration -------------------------------------------------------------------------
    def add(self, name: str, obj: T) -> T:
        """Register `obj` as `name` (checked by `validate`); a later registration of the name replaces
        the earlier one, as re-importing a module does."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a registered {self.kind} needs a non-empty name, got {name!r}")
        if self._validate is not None:
            self._validate(name, obj)
        with self._lock:
            self._items[name] = obj
        return obj

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator: `@registry.register("name")`, or `@registry.register()` to use the object's `name`."""

        def deco(obj: T) -> T:
            key = name if name is not None else getattr(obj, "name", None)
            if not isinstance(key, str):
                raise ValueError(f"{obj!r}: a registered {self.kind} needs a `name`")
            return self.add(key, obj)

        return deco

    def remove(self, name: str) -> None:
        """Forget `name` (tests that register a fixture clean up with it)."""
        with self._lock:
            self._items.pop(name, None)

    # -- lookup -------------------------------------------------------------------------------
    def find(self, name: str) -> T | None:
        """The object registered as `name`, importing its built-in module or plugin; None if unknown."""
        if name not in self._items and name in self.builtins:
            import_plugin(self.builtins[name])
        if name not in self._items and name not in self.builtins:
            self._load_plugin(name)
        return self._items.get(name)

    def get(self, name: str, where: str = "") -> T:
        """The object registered as `name`; an unknown name is a one-line InputError listing the known
        ones (`where` is inserted after the name, e.g. " in 'nosuch:x'")."""
        obj = self.find(name)
        if obj is None:
            raise InputError(f"unknown {self.kind} '{name}'{where} (known: {', '.join(self.names()) or 'none'})")
        return obj

    def __contains__(self, name: object) -> bool:
        """Whether `name` is known, without importing any module (a spec check stays fast)."""
        return isinstance(name, str) and (name in self._items or name in self.builtins or name in self._found())

    def names(self) -> list[str]:
        """Every known name (registered, built-in, allowed plugins), without importing anything."""
        with self._lock:
            known = [*self.builtins, *(n for n in self._items if n not in self.builtins),
                     *(n for n in self._found() if n not in self._items and n not in self.builtins)]
        return sorted(known) if self._sort else known

    def load_all(self) -> dict[str, T]:
        """Import every built-in module and allowed plugin; name -> object, in `names()` order."""
        for module in dict.fromkeys(self.builtins.values()):
            import_plugin(module)
        for name in list(self._found()):
            if name not in self._items:
                self._load_plugin(name)
        return {n: self._items[n] for n in self.names() if n in self._items}

    def items(self) -> list[tuple[str, T]]:
        return list(self.load_all().items())

    # -- entry points -------------------------------------------------------------------------
    def refresh(self) -> None:
        """Find entry points again (after a package was installed, or `PRIVAUDIT_PLUGINS` changed)."""
        with self._lock:
            self._plugins = None

    def _found(self) -> dict[str, list[EntryPoint]]:
        """The allowed entry points of this group by name (read once; `refresh` reads again)."""
        if self.group is None:
            return {}
        with self._lock:
            if self._plugins is None:
                allowed = allowed_plugins()
                found: dict[str, list[EntryPoint]] = {}
                for ep in entry_points(group=self.group):
                    if allowed is not None and ep.name not in allowed and _normalize(_dist_name(ep)) not in allowed:
                        continue
                    if ep.name in self.builtins:
                        warnings.warn(f"{_describe(ep)} is ignored: '{ep.name}' is a built-in {self.kind}",
                                      RuntimeWarning, stacklevel=2)
                        continue
                    found.setdefault(ep.name, [])
                    if all(x.value != ep.value for x in found[ep.name]):  # one dist seen twice on sys.path
                        found[ep.name].append(ep)
                self._plugins = found
            return self._plugins

    def _load_plugin(self, name: str) -> None:
        """Import the entry point named `name`, if one is allowed, and register what it names."""
        eps = self._found().get(name)
        if not eps:
            return
        if len(eps) > 1:
            sources = "; ".join(_describe(e) for e in eps)
            raise InputError(f"{len(eps)} plugins provide {self.kind} '{name}' ({sources}); choose one with {PLUGINS_ENV}")
        ep = eps[0]
        hint = f"(set {PLUGINS_ENV} to leave it out)"
        try:
            obj = ep.load()
            if not isinstance(obj, types.ModuleType) and self._items.get(name) is not obj:
                own = getattr(obj, "name", None)
                if isinstance(own, str) and own != name:
                    raise ValueError(f"it names {self.kind} '{own}'; the entry point's name must be '{own}'")
                self.add(name, obj)
        except Exception as exc:  # a broken plugin is named in one line, not a traceback from deep inside
            detail = " ".join(str(exc).split())  # one line, whatever the plugin raised
            raise InputError(f"{_describe(ep)} failed to load: {type(exc).__name__}: {detail} {hint}") from exc
        if name not in self._items:
            raise InputError(f"{_describe(ep)} registered no {self.kind} named '{name}' {hint}")

