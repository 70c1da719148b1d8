"""`privaudit dp-audit`: an empirical lower bound on epsilon from canaries in one training run.

Two paths, one `dp_audit.json` (privaudit/dpaudit/audit.py; Steinke, Nasr and Jagielski, NeurIPS 2023):
- built-in: `--defense none|dp_sgd|federated [--config T.toml]` trains that recipe on the embedded
  corpus plus `--n` fresh canaries (coins in OUT/canaries.jsonl), then audits the trained model
  against the epsilon its accountant claims;
- external: `--target SPEC --canaries FILE --claimed-epsilon E --delta D [--reference SPEC]`
  audits a model someone else trained on a corpus that included `privaudit data canaries` output.
Every option is checked before any model loads.
"""

from __future__ import annotations

from pathlib import Path

import click

from privaudit.commands.common import progress_from
from privaudit.errors import InputError


@click.command(name="dp-audit")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Audit folder: dp_audit.json (and, built-in, the canaries, corpus and trained model).")
@click.option("--defense", default=None, help="Built-in path: the recipe to train (none, dp_sgd, federated, ...).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Built-in path: TOML with the recipe's settings (as `privaudit defend --config`).")
@click.option("--n", "n", type=click.IntRange(min=2), default=200, show_default=True,
              help="Built-in path: number of canaries.")
@click.option("--unit", type=click.Choice(["record", "subject"]), default="record", show_default=True,
              help="Built-in path: record canaries (one document) or canary data subjects (all their documents).")
@click.option("--docs", type=click.IntRange(min=1), default=3, show_default=True,
              help="Built-in path: documents per canary subject (--unit subject).")
@click.option("--target", default=None, help="External path: the trained model's target spec.")
@click.option("--canaries", "canaries_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="External path: the auditor's canary file (privaudit data canaries).")
@click.option("--claimed-epsilon", type=click.FloatRange(min=0), default=None,
              help="External path: the epsilon the training claims (omit: no DP claim).")
@click.option("--delta", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
              help="External path: the claim's delta (default 1e-5).")
@click.option("--reference", default=None,
              help="A model that never saw the canaries (the base): adds the reference-ratio signal. "
                   "Built-in: the public base.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the canaries and the training.")
@click.option("--beta", type=click.FloatRange(0, 0.5, min_open=True, max_open=True), default=0.05, show_default=True,
              help="1 - confidence of the bound.")
@click.pass_context
def command(ctx: click.Context, out: Path, defense: str | None, config_path: Path | None, n: int, unit: str,
            docs: int, target: str | None, canaries_path: Path | None, claimed_epsilon: float | None,
            delta: float | None, reference: str | None, seed: int, beta: float) -> None:
    """Audit a DP claim: train (or take) a model with canaries and bound its epsilon from below."""
    from privaudit.dpaudit.audit import RESULT_FILE, audit_target, write_result
    from privaudit.dpaudit.canaries import generate_canaries, load_canaries, write_canaries
    from privaudit.targets.base import TargetSpec, load_target

    external = target is not None or canaries_path is not None
    if external and defense is not None:
        raise InputError("--defense (built-in training) and --target/--canaries (external model) exclude each other")
    if not external and defense is None:
        raise InputError("give --defense NAME (train here) or --target SPEC --canaries FILE (a model trained elsewhere)")
    progress = progress_from(ctx)
    if external:
        if target is None or canaries_path is None:
            raise InputError("the external path needs both --target and --canaries")
        for spec in (target, reference):
            if spec:
                TargetSpec.parse(spec)
        canaries = load_canaries(canaries_path)  # before any model loads
        source, delta = str(canaries_path), delta if delta is not None else 1e-5
        target_spec, reference_spec, defense_name = target, reference, None
    else:
        from privaudit.commands.defend import _defense_table
        from privaudit.dpaudit.train import train_with_canaries

        if claimed_epsilon is not None or delta is not None:
            raise InputError("--claimed-epsilon/--delta are for the external path: the built-in path audits "
                             "the epsilon the recipe's accountant reports")
        table, _ = _defense_table(defense, config_path)
        out.mkdir(parents=True, exist_ok=True, mode=0o700)
        canaries_path = out / "canaries.jsonl"
        canaries = generate_canaries(n, unit, seed=seed, docs=docs)
        if canaries_path.is_file() and load_canaries(canaries_path) != canaries:
            raise InputError(f"{canaries_path}: canaries of other settings; use another --out folder")
        write_canaries(canaries_path, canaries, seed)
        trained = train_with_canaries(out, defense, table, canaries, seed=seed, progress=progress)
        source, claimed_epsilon, delta = str(canaries_path), trained.claimed_epsilon, trained.delta
        target_spec, reference_spec, defense_name = trained.target_spec, reference or trained.base_spec, defense
    model = load_target(target_spec)
    ref = load_target(reference_spec) if reference_spec else None
    try:
        result = audit_target(model, ref, canaries, source=source, claimed_epsilon=claimed_epsilon, delta=delta,
                              beta=beta)
    finally:
        model.close()
        if ref is not None:
            ref.close()
    result.update(target=target_spec, reference=reference_spec, defense=defense_name)
    path = write_result(out / RESULT_FILE, result)
    spec_path = write_gate_spec(out, target_spec, canaries_path, claimed_epsilon, delta, reference_spec, beta)
    claim = "none" if claimed_epsilon is None else f"{claimed_epsilon:.4g}"
    click.echo(f"empirical epsilon lower bound: {result['empirical_epsilon_lower']:.3f} at {1 - beta:.0%} "
               f"(signal {result['signal']}, {result['correct']}/{result['guesses']} guesses right, "
               f"{result['canaries']} {result['unit']} canaries, delta {delta:g}); claimed epsilon: {claim}")
    if result["claim_violated"]:
        click.echo("CLAIM VIOLATED: the lower bound exceeds the claimed epsilon (the DP pipeline has a bug)")
    click.echo(f"wrote {path}; gate it in CI with: privaudit run {spec_path} --gate")


def write_gate_spec(out: Path, target: str, canaries: Path, claimed_epsilon: float | None, delta: float,
                    reference: str | None, beta: float) -> Path:
    """OUT/audit.toml: the same audit as a `dp_audit` attack, gated on `claim_violated == false`.

    `privaudit run OUT/audit.toml --gate` rescores the canaries in a resumable run folder and exits
    1 when the bound exceeds the claim: the CI form of this command's verdict.
    """
    import json

    q = json.dumps  # a JSON string is a valid TOML basic string
    lines = [f"targets = [{q(target)}]", f"out = {q(str((out / 'run').resolve()))}", "",
             "[attacks.dp_audit]", f"canaries = {q(str(Path(canaries).resolve()))}",
             f"claimed_epsilon = {claimed_epsilon if claimed_epsilon is not None else -1.0!r}",
             f"delta = {delta!r}", f"beta = {beta!r}"]
    if reference:
        lines.append(f"reference = {q(reference)}")
    lines += ["", "[thresholds]", '"dp_audit.claim_violated" = "== false"', ""]
    path = out / "audit.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
