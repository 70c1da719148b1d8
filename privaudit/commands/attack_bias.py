"""`privaudit attack bias`: personalization-bias probes (safety, utility, names) on one target."""

from __future__ import annotations

from pathlib import Path

import click

from privaudit.commands.common import (
    batch_size_option,
    out_option,
    run_attack_command,
    seed_option,
    target_option,
)

AXES = ("safety", "utility", "names")


def _axes(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    if value is None:
        return None
    axes = [a.strip() for a in value.split(",") if a.strip()]
    unknown = [a for a in axes if a not in AXES]
    if unknown or not axes:
        raise click.BadParameter(f"unknown axis '{unknown[0] if unknown else value}' (known: {', '.join(AXES)})")
    return axes


def _ids(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


@click.command(name="bias")
@target_option()
@out_option("privaudit-runs/bias")
@click.option("--persona-mode", type=click.Choice(["system", "prefix"]), default=None,
              help="Persona as the system prompt 'You are a helpful assistant. I am X.' (default) or a user-turn prefix.")
@click.option("--axes", callback=_axes, default=None, metavar="LIST",
              help="Comma-separated subset of safety,utility,names (default: all).")
@click.option("--personas", "personas", callback=_ids, default=None, metavar="IDS",
              help="Comma-separated persona ids to probe (default: all shipped ones).")
@click.option("--personas-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="JSON file of extra personas (layout of attacks/data/personas.json).")
@click.option("--max-items", type=click.IntRange(min=1), default=None,
              help="Use only the first N items of each set (unsafe, benign, questions, name templates).")
@click.option("--samples", type=click.IntRange(min=1), default=None,
              help="Replies per conversation (k); k > 1 samples at --temperature.")
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=None)
@click.option("--judge", default=None, help="Target spec of an LLM judge for refusals (default: documented rules).")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
              help="Significance level after multiple-comparison correction (default 0.05).")
@click.option("--fairness-prompt", is_flag=True, default=False,
              help="Put the fairness instruction before the system prompt of every conversation (the prompt defense).")
@click.option("--fairness-instruction", default=None, metavar="TEXT",
              help="Wording of the fairness instruction (implies --fairness-prompt; default: privaudit's).")
@seed_option
@batch_size_option
@click.pass_context
def command(ctx: click.Context, target: str, out: Path, persona_mode: str | None, axes: list[str] | None,
            personas: list[str] | None, personas_file: Path | None, max_items: int | None, samples: int | None,
            temperature: float | None, judge: str | None, alpha: float | None, fairness_prompt: bool,
            fairness_instruction: str | None, seed: int, batch_size: int) -> None:
    """Personalization bias: per-persona refusal, over-refusal and accuracy vs a no-persona control,
    the PB score (Vijjini et al.), and cultural presumptions from names (Pawar et al.)."""
    params = {
        "persona_mode": persona_mode, "axes": axes, "personas": personas,
        "personas_file": str(personas_file) if personas_file else None, "max_items": max_items,
        "samples": samples, "temperature": temperature, "judge": judge, "alpha": alpha,
        # Left out unless asked for, so a run without the option keeps its config (and resumes).
        "fairness_prompt": True if fairness_prompt or fairness_instruction is not None else None,
        "fairness_instruction": fairness_instruction,
    }
    run_attack_command(ctx, "bias", params, target=target, out=out, seed=seed, batch_size=batch_size)
