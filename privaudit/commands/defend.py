"""`privaudit defend NAME`: apply one registered defense to a base model and a personal corpus.

Writes a defended variant folder (its model or adapter, and `defended.json` with the training,
privacy and scrub reports) and prints the target spec that audits load. The variant is built by
`privaudit.defenses.variants.build_variant`, the function `privaudit compare` uses, so one table
gives the same record either way: validated before anything is read or trained, a complete folder
reused, a folder built with other settings refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from privaudit.commands.common import progress_from


@click.command(name="defend")
@click.argument("name", metavar="DEFENSE")
@click.option("--base", required=True, help="Base model to defend: hf:PATH (a local folder).")
@click.option("--corpus", required=True, type=click.Path(path_type=Path), help="Personal corpus (JSONL).")
@click.option("--subjects", required=True, type=click.Path(path_type=Path), help="Data subjects (JSONL).")
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Folder for the defended variant.")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="TOML with the defense's settings (top-level keys, or a [defenses.NAME] table).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the training, where the config names none (as compare's `seed`).")
@click.option("--superlink", default=None, metavar="HOST:PORT",
              help="federated: submit to this existing Flower SuperLink instead of starting local processes.")
@click.option("--root-certificates", type=click.Path(path_type=Path), default=None,
              help="federated: PEM CA bundle that verifies the SuperLink's TLS certificate (Flower's root-certificates).")
@click.option("--insecure", is_flag=True, default=False,
              help="federated: connect to --superlink without TLS (test setups only).")
@click.pass_context
def command(ctx: click.Context, name: str, base: str, corpus: Path, subjects: Path, out: Path,
            config_path: Path | None, seed: int, superlink: str | None, root_certificates: Path | None,
            insecure: bool) -> None:
    """Apply DEFENSE (none, scrub, dp_sgd, output_filter, federated, ...) and save the variant.

    DEFENSE may also name a variant of the config's [defenses] table (`defense = ...` inside it).
    """
    from privaudit.defenses.registry import load_defended
    from privaudit.defenses.variants import build_variant, configure_variant, load_context

    table, where = _defense_table(name, config_path)
    table = _with_federation(table, where, superlink, root_certificates, insecure)
    variant = configure_variant(name, table, seed=seed, where=where)
    if load_defended(out) is not None:
        click.echo(f"reusing complete variant in {out}")
    record = build_variant(variant, load_context(base, corpus, subjects, out, seed=seed, progress=progress_from(ctx)))
    if record.training is not None:
        t = record.training
        click.echo(f"held-out perplexity: {t.heldout_perplexity:.2f} (base {t.base_heldout_perplexity or float('nan'):.2f}); "
                   f"{t.steps} steps in {t.seconds:.1f} s")
    if record.privacy is not None:
        p = record.privacy
        click.echo(f"epsilon spent: {p.epsilon:.4f} at delta {p.delta:g} (noise {p.noise_multiplier:.4f}, "
                   f"clip {p.max_grad_norm:g}, sample rate {p.sample_rate:.4f}, {p.steps} steps, {p.accountant}; "
                   f"privacy unit: {p.privacy_unit})")
    if record.scrub is not None:
        s = record.scrub
        click.echo(f"scrubbed spans: {json.dumps(dict(s.removed), sort_keys=True)}; known values surviving: "
                   f"{s.known_values_surviving}/{s.known_values_total} {json.dumps(dict(s.surviving), sort_keys=True)}")
    click.echo(f"target: {record.target_spec}")


def _with_federation(table: dict[str, Any], where: str, superlink: str | None, root_certificates: Path | None,
                     insecure: bool) -> dict[str, Any]:
    """The table with the command line's federation options (`superlink`, `root_certificates`,
    `insecure` keys of the federated defenses) put in; they override the config file's."""
    from privaudit.errors import InputError

    given = {k: v for k, v in (("superlink", superlink), ("insecure", insecure or None),
                               ("root_certificates", str(root_certificates) if root_certificates else None))
             if v is not None}
    if not given:
        return table
    if superlink is None and "superlink" not in table:
        raise InputError(f"{where}: --root-certificates and --insecure need --superlink HOST:PORT")
    if root_certificates is not None and not root_certificates.is_file():
        raise InputError(f"--root-certificates {root_certificates}: no such file")
    return {**table, **given}


def _defense_table(name: str, config_path: Path | None) -> tuple[dict[str, Any], str]:
    """The table for NAME and its key path: a `[defenses.NAME]` table of a compare.toml, or the
    file's top-level keys. A table's `defense = ...` names the defense, as in compare."""
    from privaudit.config import load_toml
    from privaudit.errors import InputError

    if config_path is None:
        return {}, f"privaudit defend {name}"
    raw = load_toml(config_path)
    if "defenses" not in raw:
        return dict(raw), str(config_path)
    tables = raw["defenses"]
    if not isinstance(tables, dict) or name not in tables:
        known = ", ".join(tables) if isinstance(tables, dict) else "none"
        raise InputError(f"{config_path}: defenses.{name}: no such table (tables: {known})")
    return tables[name], f"{config_path}: defenses.{name}"
