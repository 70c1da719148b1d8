"""`privaudit data ...`: generate data subjects and a personal corpus, and validate data files."""

from __future__ import annotations

from pathlib import Path

import click

from privaudit.data.corpus import assign_repeats, corpus_summary, generate_corpus, load_corpus
from privaudit.data.jsonl import read_jsonl
from privaudit.data.subjects import generate_subjects, load_subjects, write_subjects
from privaudit.errors import InputError


def _int_list(text: str, option: str, minimum: int) -> list[int]:
    """Parse "1,4,16" (an option value) into integers >= minimum, naming the option on error."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InputError(f"{option}: expected comma-separated integers, got '{text}'") from None
    if not values or any(v < minimum for v in values):
        raise InputError(f"{option}: expected integers >= {minimum}, got '{text}'")
    return values


@click.group(name="data")
def command() -> None:
    """Generate synthetic data subjects and corpora, and validate data files."""


@command.command("subjects")
@click.option("--n", "n", type=click.IntRange(min=1), default=200, show_default=True, help="Number of subjects.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed (same seed, same file).")
@click.option("--locale", default="en_US", show_default=True, help="Faker locale for names and addresses.")
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Subjects JSONL to write (user-only permissions).")
def subjects_cmd(n: int, seed: int, locale: str, out: Path) -> None:
    """Write N synthetic data subjects (name, email, phone, address, birthdate, employer)."""
    count = write_subjects(out, generate_subjects(n, seed=seed, locale=locale))
    click.echo(f"wrote {count} subjects to {out}")


@command.command("corpus")
@click.option("--subjects", "subjects_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Subjects JSONL (from `privaudit data subjects` or your own).")
@click.option("--repeats", default="1", show_default=True,
              help="Copies of each training subject's documents; '1,4,16' spreads these levels over subjects.")
@click.option("--canaries", default="", show_default=False,
              help="Canary repeat counts, e.g. '1,4,16' (one canary per entry; 0 plants a control).")
@click.option("--docs-per-subject", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--heldout-fraction", type=click.FloatRange(0.0, 1.0, max_open=True), default=0.2, show_default=True,
              help="Share of subjects (and filler) kept out of training.")
@click.option("--filler-docs", type=click.IntRange(min=0), default=20, show_default=True,
              help="PII-free documents for utility/perplexity.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Corpus JSONL to write (user-only permissions).")
def corpus_cmd(subjects_path: Path, repeats: str, canaries: str, docs_per_subject: int, heldout_fraction: float,
               filler_docs: int, seed: int, out: Path) -> None:
    """Write a personal corpus (emails, chats, notes) mentioning the subjects' PII."""
    subjects = load_subjects(subjects_path)
    levels = _int_list(repeats, "--repeats", minimum=1)
    per_subject: int | dict[str, int] = levels[0] if len(levels) == 1 else assign_repeats(subjects, levels, seed)
    canary_repeats = _int_list(canaries, "--canaries", minimum=0) if canaries.strip() else []
    corpus = generate_corpus(subjects, repeats=per_subject, seed=seed, heldout_subject_fraction=heldout_fraction,
                             docs_per_subject=docs_per_subject, canaries=canary_repeats, filler_docs=filler_docs)
    corpus.write(out)
    click.echo(f"wrote corpus to {out}: {_describe_corpus(corpus_summary(corpus))}")


@command.command("validate")
@click.argument("path", type=click.Path(path_type=Path))
def validate_cmd(path: Path) -> None:
    """Check a subjects or corpus JSONL file; print counts, or the first error (exit 2)."""
    rows = read_jsonl(path)
    first = next(rows)[1]
    rows.close()
    if "record" in first or "text" in first:
        summary = corpus_summary(load_corpus(path))
        click.echo(f"{path}: valid corpus: {_describe_corpus(summary)}")
        return
    subjects = load_subjects(path)
    fields: dict[str, int] = {}
    for s in subjects:
        for key in s.pii_fields():
            fields[key] = fields.get(key, 0) + 1
    per_field = ", ".join(f"{k} {v}" for k, v in fields.items())
    click.echo(f"{path}: valid subjects: {len(subjects)} subjects ({per_field or 'no PII fields'})")


def _describe_corpus(summary: dict) -> str:
    return (f"{summary['documents']} documents ({summary['train_texts']} training texts with repeats, "
            f"{summary['heldout_texts']} held-out), {summary['train_subjects']} training and "
            f"{summary['heldout_subjects']} held-out subjects, {summary['canaries']} canaries")
