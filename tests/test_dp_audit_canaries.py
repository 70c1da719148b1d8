"""Audit canaries: seeded coins that reach only the auditor's file; strict reading; the CLI paths' errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from privaudit.cli import main
from privaudit.dpaudit.audit import summarize_audit
from privaudit.dpaudit.canaries import (
    add_to_corpus, generate_canaries, load_canaries, training_documents, write_canaries,
)
from privaudit.errors import InputError


def test_canaries_are_seeded_and_coins_are_fair_enough():
    a, b = generate_canaries(400, "record", seed=3), generate_canaries(400, "record", seed=3)
    assert a == b and a != generate_canaries(400, "record", seed=4)
    assert 160 < sum(c.included for c in a) < 240  # Binomial(400, 1/2): 8 sd either side
    assert len({c.texts[0] for c in a}) == 400  # distinct secrets


def test_subject_canaries_share_one_subject_and_stay_in_or_out_together():
    canaries = generate_canaries(10, "subject", seed=0, docs=4)
    docs = training_documents(canaries)
    for c in canaries:
        mine = [d for d in docs if d["subject_id"] == c.subject_id]
        assert len(mine) == (4 if c.included else 0)


def test_training_documents_never_carry_the_bits_or_the_left_out(tmp_path):
    canaries = generate_canaries(50, "record", seed=1)
    docs = training_documents(canaries)
    assert all(set(d) == {"id", "subject_id", "text"} for d in docs)
    left_out = {c.texts[0] for c in canaries if not c.included}
    assert not left_out & {d["text"] for d in docs}


def test_add_to_corpus_groups_subject_canaries_for_user_level_dp():
    from privaudit.data.corpus import generate_corpus
    from privaudit.data.subjects import generate_subjects
    from privaudit.defenses.dp_sgd import privacy_units

    corpus = generate_corpus(generate_subjects(3, seed=0), seed=0, filler_docs=2)
    canaries = generate_canaries(8, "subject", seed=0, docs=2)
    units = privacy_units(add_to_corpus(corpus, canaries), "subject")
    for c in canaries:
        assert (c.subject_id in units) == c.included
        if c.included:
            assert all(t in units[c.subject_id] for t in c.texts)


def test_round_trip_and_malformed_lines_name_file_and_line(tmp_path):
    path = tmp_path / "c.jsonl"
    canaries = generate_canaries(6, "record", seed=0)
    write_canaries(path, canaries, seed=0)
    assert load_canaries(path) == canaries
    lines = path.read_text().splitlines()
    row = json.loads(lines[2])
    row["included"] = "yes"
    path.write_text("\n".join([lines[0], lines[1], json.dumps(row), *lines[3:]]) + "\n")
    with pytest.raises(InputError, match=r"c.jsonl:3: field 'included'"):
        load_canaries(path)


def test_all_same_bit_is_refused(tmp_path):
    path = tmp_path / "c.jsonl"
    canaries = [c for c in generate_canaries(20, "record", seed=0) if c.included][:3]
    write_canaries(path, canaries, seed=0)
    with pytest.raises(InputError, match="same inclusion bit"):
        load_canaries(path)


def test_summarize_flags_a_claim_below_the_bound():
    included = [i % 3 != 0 for i in range(300)]
    perfect = [{"loss": 1.0 if b else 0.0} for b in included]
    out = summarize_audit(perfect, included, unit="record", claimed_epsilon=0.5, delta=1e-5)
    assert out["empirical_epsilon_lower"] > 0.5 and out["claim_violated"] is True
    chance = [{"loss": float(i % 7)} for i in range(300)]
    out = summarize_audit(chance, included, unit="record", claimed_epsilon=0.5, delta=1e-5)
    assert out["claim_violated"] is False and out["empirical_epsilon_lower"] < 0.5


def test_cli_writes_both_files_and_the_external_path_validates_before_loading(tmp_path):
    runner = CliRunner()
    out = tmp_path / "canaries.jsonl"
    res = runner.invoke(main, ["data", "canaries", "--n", "20", "--unit", "subject", "--out", str(out)])
    assert res.exit_code == 0, res.output
    train = tmp_path / "canaries.train.jsonl"
    assert load_canaries(out) and all("included" not in json.loads(line) for line in train.read_text().splitlines())
    # the training file is not a canary file: one line, exit 2, no model loaded
    res = runner.invoke(main, ["dp-audit", "--out", str(tmp_path / "a"), "--target", "hf:/no/such/model",
                               "--canaries", str(train)])
    assert res.exit_code == 2 and "canaries.train.jsonl:1: field 'record'" in res.output
    res = runner.invoke(main, ["dp-audit", "--out", str(tmp_path / "a"), "--defense", "none", "--target", "hf:/x"])
    assert res.exit_code == 2 and "exclude each other" in res.output


def test_a_canary_file_for_another_vocabulary_is_one_line():
    """A word-level tokenizer (no byte fallback) turns the secret's digits into <unk>: refused, naming the canary."""
    from types import SimpleNamespace

    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from privaudit.dpaudit.audit import check_tokenizable

    canaries = generate_canaries(3, "record", seed=0)
    words = {w for c in canaries for w in c.texts[0].replace(".", " .").split() if not w[0].isdigit()}
    vocab = {"<unk>": 0, **{w: i + 1 for i, w in enumerate(sorted(words))}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    target = SimpleNamespace(tokenizer=PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>"))
    with pytest.raises(InputError, match=r"c.jsonl: canary 'dpc-r0000' does not tokenize"):
        check_tokenizable(target, canaries, "c.jsonl")


def test_canaries_join_a_privaudit_corpus_for_defend_and_compare(tmp_path):
    from privaudit.data.corpus import generate_corpus, load_corpus
    from privaudit.data.subjects import generate_subjects

    corpus_path = tmp_path / "corpus.jsonl"
    generate_corpus(generate_subjects(3, seed=0), seed=0, filler_docs=2).write(corpus_path)
    res = CliRunner().invoke(main, ["data", "canaries", "--n", "10", "--out", str(tmp_path / "c.jsonl"),
                                    "--corpus", str(corpus_path)])
    assert res.exit_code == 0, res.output
    joined = load_corpus(tmp_path / "c.corpus.jsonl")
    included = {c.texts[0] for c in load_canaries(tmp_path / "c.jsonl") if c.included}
    added = {d.text for d in joined.documents if d.kind == "canary" and d.split == "train"}
    assert added == included and len(joined.documents) == len(load_corpus(corpus_path).documents) + len(included)


def test_built_in_path_audits_the_accountants_claim_not_a_given_one(tmp_path):
    res = CliRunner().invoke(main, ["dp-audit", "--out", str(tmp_path), "--defense", "none", "--claimed-epsilon", "3"])
    assert res.exit_code == 2 and "the built-in path audits the epsilon the recipe's accountant reports" in res.output
