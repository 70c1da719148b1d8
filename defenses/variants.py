"""One defended variant from one config table: the single path `privaudit defend` and `compare` share.

Three steps, each done once:
1. `configure_variant` validates the table before anything trains: which defense (`defense = NAME`,
   default the variant's name), its `Params` through the defense's `from_config` (errors name the
   key path), and the run's seed folded in where the table names none.
2. `load_context` reads the corpus and the subjects once into a `DefenseContext`.
3. `build_variant` is the preamble every defense used to repeat: refuse a folder built with other
   settings (`variant.json`), reuse a complete one (`defended.json`), hand a wrapping defense the
   model it wraps, create the folder, then `defense.apply(ctx)`.

So the same table gives the same record whether `defend` or `compare` builds it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from privaudit.config import _key, config_hash
from privaudit.defenses.registry import (
    DefendedModel, Defense, DefenseContext, base_path, get_defense, load_defended,
)
from privaudit.errors import InputError
from privaudit.progress import ProgressReporter

VARIANT_FILE = "variant.json"


@dataclass(frozen=True)
class Variant:
    """A configured variant: its name, its validated defense, the table it came from and its seed."""

    name: str
    defense: Defense
    table: Mapping[str, Any]  # as written, without the `defense` key: part of the folder's identity
    seed: int | None  # the seed its training uses (None: the defense takes none)

    @property
    def wraps(self) -> str | None:
        return self.defense.wrapped_variant()


def configure_variant(variant: str, table: Mapping[str, Any], *, seed: int, where: str) -> Variant:
    """Validate one variant's table (`where` is its key path, e.g. `compare.toml: defenses.dp_eps1`)."""
    if not isinstance(table, Mapping):
        raise InputError(f"{where}: expected a table, got {type(table).__name__}")
    cfg = dict(table)
    name = cfg.pop("defense", variant)
    if not isinstance(name, str):
        raise InputError(f"{_key(where, 'defense')}: expected a defense name, got {name!r}")
    try:
        defense = get_defense(name)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    takes_seed = "seed" in defense.config_keys()
    configured = defense.from_config({"seed": seed, **cfg} if takes_seed else cfg, where)
    return Variant(variant, configured, cfg, cfg.get("seed", seed) if takes_seed else None)


def configure_variants(tables: Mapping[str, Mapping[str, Any]], *, seed: int, where: str) -> dict[str, Variant]:
    """Every variant of a comparison validated, and every wrapper's `wraps` naming a plain variant."""
    if not tables:
        raise InputError(f"{where}: at least one defense variant is required")
    variants = {v: configure_variant(v, t, seed=seed, where=_key(where, v)) for v, t in tables.items()}
    for v, variant in variants.items():
        wraps = variant.wraps
        if wraps is not None and (wraps not in variants or variants[wraps].wraps is not None):
            raise InputError(f"{_key(_key(where, v), 'wraps')}: variant '{wraps}' is not a compared variant "
                             f"that trains a model (variants: {', '.join(variants)})")
    return variants


def build_order(variants: Mapping[str, Variant]) -> list[str]:
    """Variant names with every wrapper after the variants it wraps (otherwise in the given order)."""
    return sorted(variants, key=lambda v: variants[v].wraps is not None)


def load_context(base: str, corpus: Path, subjects: Path, out_dir: Path, *, seed: int = 0,
                 progress: ProgressReporter | None = None) -> DefenseContext:
    """Read the corpus and the subjects once; `out_dir` is replaced per variant by the caller."""
    from privaudit.data.corpus import load_corpus
    from privaudit.data.subjects import load_subjects

    base_path(base)  # validates the spec form before anything is read
    return DefenseContext(base=base, corpus=load_corpus(corpus), subjects=tuple(load_subjects(subjects)),
                          out_dir=Path(out_dir), seed=seed, progress=progress or ProgressReporter(quiet=True),
                          corpus_path=Path(corpus).resolve(), subjects_path=Path(subjects).resolve())


def variant_identity(variant: Variant, ctx: DefenseContext) -> dict[str, Any]:
    """What a variant folder was built from; a rerun with other settings must not reuse it."""
    corpus = ctx.corpus_path
    digest = config_hash(corpus.read_bytes().hex()) if corpus is not None and corpus.is_file() else ""
    identity = {"variant": variant.name, "defense": variant.defense.name, "config": dict(variant.table),
                "base": str(base_path(ctx.base).resolve()), "corpus_sha": digest, "seed": variant.seed}
    return json.loads(json.dumps(identity, default=str))


def _same_identity(stored: Mapping[str, Any], identity: Mapping[str, Any]) -> bool:
    """Equal identities; a folder from before seeds were recorded trained with its table's seed or 0."""
    stored = dict(stored)
    if "seed" not in stored and identity["seed"] is not None:
        stored["seed"] = dict(stored.get("config") or {}).get("seed", 0)
    stored.setdefault("seed", None)
    return stored == dict(identity)


def build_variant(variant: Variant, ctx: DefenseContext,
                  built: Mapping[str, DefendedModel] | None = None) -> DefendedModel:
    """Reuse or build `variant` into `ctx.out_dir`.

    A wrapping defense gets `built[wraps]` as `ctx.inner`; with `built` None (one variant alone,
    `privaudit defend`) it wraps the base model itself.
    """
    out_dir = Path(ctx.out_dir)
    identity = variant_identity(variant, ctx)
    marker = out_dir / VARIANT_FILE
    if marker.is_file() and not _same_identity(json.loads(marker.read_text(encoding="utf-8")), identity):
        raise InputError(f"{out_dir}: variant '{variant.name}' was built with other settings; use another --out folder")
    existing = load_defended(out_dir)
    if existing is not None:
        ctx.progress.log(f"variant {variant.name}: reusing {out_dir}")
        return existing
    if variant.wraps is not None:
        ctx = dataclasses.replace(ctx, inner=_wrapped(variant, ctx, built))
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    marker.write_text(json.dumps(identity, indent=2, sort_keys=True), encoding="utf-8")
    ctx.progress.log(f"variant {variant.name}: applying defense '{variant.defense.name}'")
    return variant.defense.apply(ctx)


def _wrapped(variant: Variant, ctx: DefenseContext, built: Mapping[str, DefendedModel] | None) -> DefendedModel:
    if built is None:
        return DefendedModel(name="base", target_spec=ctx.base, out_dir=Path(ctx.out_dir))
    if variant.wraps not in built:
        raise InputError(f"defenses.{variant.name}.wraps: variant '{variant.wraps}' was not built before it")
    return built[variant.wraps]


def build_all(variants: Mapping[str, Variant], ctx: DefenseContext, root: Path) -> dict[str, DefendedModel]:
    """Every variant into `root/NAME`, wrappers after what they wrap; returned in the given order."""
    built: dict[str, DefendedModel] = {}
    for name in build_order(variants):
        built[name] = build_variant(variants[name], dataclasses.replace(ctx, out_dir=Path(root) / name), built)
    return {name: built[name] for name in variants}


__all__ = [
    "VARIANT_FILE", "Variant", "build_all", "build_order", "build_variant", "configure_variant", "configure_variants",
    "load_context", "variant_identity",
]
