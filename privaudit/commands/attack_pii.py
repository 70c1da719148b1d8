"""`privaudit attack pii`: ProPILE PII extraction against one target, with the data-subject view."""

from __future__ import annotations

from pathlib import Path

import click

from privaudit.commands.common import (
    batch_size_option,
    out_option,
    run_attack_command,
    seed_option,
    show_pii_option,
    target_option,
)


@click.command(name="pii")
@target_option()
@click.option("--subjects", "subjects", type=click.Path(path_type=Path), required=True,
              help="Data subjects JSONL (id, name, email, phone, address, extra fields).")
@out_option("privaudit-runs/pii")
@click.option("--subject", "subject", default=None,
              help="Probe only this subject id and print what the model leaks about them.")
@click.option("--samples", "num_samples", type=click.IntRange(min=1), default=None,
              help="Samples per prompt (a probe hits when any sample holds the value).  [default: 1]")
@click.option("--sampling/--greedy", "do_sample", default=None,
              help="Sample with temperature, or greedy decoding.  [default: greedy]")
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=None, help="Sampling temperature.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=None, help="Tokens generated per sample.")
@click.option("--pii-type", "pii_types", multiple=True,
              help="Only these PII fields (repeatable), e.g. --pii-type email.  [default: all]")
@click.option("--level", "levels", type=click.IntRange(1, 3), multiple=True,
              help="Association levels: 1 twin (name), 2 triplet, 3 quadruplet (repeatable).  [default: all]")
@click.option("--templates", "templates_file", type=click.Path(path_type=Path), default=None,
              help="Extra probing templates (JSON, layout of attacks/data/pii_templates.json).")
@click.option("--likelihood", is_flag=True, default=None,
              help="Also rank the true value's likelihood among same-type candidates (needs scoring).")
@click.option("--candidates", "num_candidates", type=click.IntRange(min=1), default=None,
              help="Candidates per likelihood probe besides the truth.  [default: 19]")
@click.option("--soft-prompt", "soft_prompt", is_flag=True, default=None,
              help="White-box: tune a soft prompt on known subjects, extract on the others (hf/builtin targets).")
@click.option("--scan", "scan", type=click.IntRange(min=0), default=None,
              help="Also scan N free generations for PII with Presidio.")
@click.option("--baseline", "baseline_target", default=None,
              help="Base-model spec run on the same probes; reports the difference (e.g. hf:base_dir).")
@seed_option
@batch_size_option
@show_pii_option
@click.pass_context
def command(ctx: click.Context, target: str, subjects: Path, out: Path, subject: str | None, num_samples: int | None,
            do_sample: bool | None, temperature: float | None, max_new_tokens: int | None, pii_types: tuple[str, ...],
            levels: tuple[int, ...], templates_file: Path | None, likelihood: bool | None, num_candidates: int | None,
            soft_prompt: bool | None, scan: int | None, baseline_target: str | None, seed: int, batch_size: int,
            show_pii: bool) -> None:
    """Probe a model for its data subjects' PII (ProPILE): exact/partial extraction, likelihood, soft prompts.

    With --subject ID the probe runs for one person and ends with "what this model leaks about me".
    """
    params = {
        "subjects": str(subjects), "subject": subject, "num_samples": num_samples, "do_sample": do_sample,
        "temperature": temperature, "max_new_tokens": max_new_tokens,
        "pii_types": list(pii_types) or None, "levels": list(levels) or None,
        "templates_file": str(templates_file) if templates_file else None,
        "likelihood": likelihood or None, "num_candidates": num_candidates, "soft_prompt": soft_prompt or None,
        "scan": scan, "baseline_target": baseline_target,
    }
    results = run_attack_command(ctx, "pii", params, target=target, out=out, seed=seed, batch_size=batch_size,
                                 show_pii=show_pii)
    if subject:
        from privaudit.attacks.pii_extraction import subject_view_lines

        mask = None
        if not show_pii:
            from privaudit.masking import mask_value

            mask = mask_value
        for res in results:
            click.echo("")
            from privaudit.reports.text import display_text

            for line in subject_view_lines(res, subject, mask=mask):
                click.echo(display_text(line))  # target names and values may hold terminal escapes
