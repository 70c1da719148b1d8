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


@command.command("canaries")
@click.option("--n", "n", type=click.IntRange(min=2), required=True, help="Number of canaries.")
@click.option("--unit", type=click.Choice(["record", "subject"]), default="record", show_default=True,
              help="record: one document per canary; subject: a canary data subject with --docs documents.")
@click.option("--docs", type=click.IntRange(min=1), default=3, show_default=True,
              help="Documents per canary subject (--unit subject).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of texts and coins.")
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The auditor's canary file, WITH the inclusion bits: keep it from the training team.")
@click.option("--train-out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The documents to add to the training set (default: OUT with .train.jsonl); no bits.")
@click.option("--corpus", "corpus_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write this privaudit corpus plus the included canaries (for defend / compare).")
@click.option("--corpus-out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where --corpus with the canaries goes (default: OUT with .corpus.jsonl).")
def canaries_cmd(n: int, unit: str, docs: int, seed: int, out: Path, train_out: Path | None,
                 corpus_path: Path | None, corpus_out: Path | None) -> None:
    """Write audit canaries for `privaudit dp-audit --canaries` and the documents to train on."""
    from privaudit.data.jsonl import write_jsonl
    from privaudit.dpaudit.canaries import add_to_corpus, generate_canaries, training_documents, write_canaries

    corpus = load_corpus(corpus_path) if corpus_path is not None else None  # checked before anything is written

    canaries = generate_canaries(n, unit, seed=seed, docs=docs)
    train_out = train_out or out.with_name(out.name.removesuffix(".jsonl") + ".train.jsonl")
    if Path(train_out).resolve() == Path(out).resolve():
        raise InputError("--train-out: must differ from --out (the training documents carry no bits)")
    write_canaries(out, canaries, seed)
    count = write_jsonl(train_out, training_documents(canaries))
    click.echo(f"wrote {len(canaries)} {unit} canaries to {out} (inclusion bits: auditor only) and "
               f"{count} training documents to {train_out}")
    if corpus is not None:
        corpus_out = corpus_out or out.with_name(out.name.removesuffix(".jsonl") + ".corpus.jsonl")
        add_to_corpus(corpus, canaries).write(corpus_out)
        click.echo(f"wrote {corpus_path} plus the included canaries to {corpus_out}")
