"""The pure half of PII reconstruction: masking sentences, user templates, ranking and exposure."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privaudit.attacks.reconstruction_probes import (
    MASK, MaskedSentence, corpus_sentences, extract_candidates, load_masked_templates, mask_value, rank_candidates,
    sentence_score, split_sentences,
)
from privaudit.data.corpus_types import Corpus, Document
from privaudit.data.subjects import DataSubject
from privaudit.errors import InputError

JANE = DataSubject(id="s1", name="Jane Roe", email="jane.roe@example.com", phone="(555) 123-4567",
                   address="12 Elm St. Springfield, IL 62701")
BOB = DataSubject(id="s2", name="Bob Poe", email="bob@poe.net", phone="(555) 987-6543", address="")


def test_mask_hides_the_value_and_replaces_the_subjects_other_pii_as_scrubbing_does() -> None:
    sentence = "Reach Jane Roe at (555) 123-4567 or jane.roe@example.com (again: jane.roe@example.com)."
    masked = mask_value(sentence, JANE.email, JANE.pii_fields())
    assert masked == f"Reach Jane Roe at <PHONE_NUMBER> or {MASK} (again: <EMAIL_ADDRESS>)."


def test_corpus_sentences_take_the_sentence_holding_the_value_and_its_line_when_a_break_splits_it() -> None:
    doc = Document(id="d1", subject_id="s1", kind="email", split="train", mentions=("email", "address"),
                   text="Subject: hi\n\nDear Jane Roe,\nWrite to jane.roe@example.com today. Ship to 12 Elm St. "
                        "Springfield, IL 62701 please.\nBye")
    held = Document(id="d2", subject_id="s2", kind="note", split="heldout", text="Bob Poe: bob@poe.net.")
    found = corpus_sentences(Corpus(documents=(doc, held)), [JANE, BOB])
    by_type = {s.pii_type: s for s in found}
    assert set(by_type) == {"email", "address"}  # held-out and absent values give no sentence
    assert by_type["email"].template == f"Write to {MASK} today."
    assert by_type["address"].template.startswith("Write to <EMAIL_ADDRESS> today. Ship to [MASK] please")
    assert by_type["email"].fill(JANE.email) == f"Write to {JANE.email} today."
    assert [s.subject_id for s in corpus_sentences(Corpus(documents=(doc, held)), [JANE, BOB], split="heldout")] == ["s2"]
    whole = corpus_sentences(Corpus(documents=(doc,)), [JANE], pii_types=["email"], context="document")
    assert whole[0].template.startswith("Subject: hi") and whole[0].template.count(MASK) == 1
    assert split_sentences("A b. C d!\nE") == ["A b.", "C d!", "E"]


def test_user_templates_are_validated_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "masked.jsonl"
    rows = [{"subject_id": "s1", "pii_type": "email", "template": f"Mail Jane at {MASK} now."}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    [sentence] = load_masked_templates(path, [JANE])
    assert sentence.truth == JANE.email and sentence.prefix == "Mail Jane at " and sentence.suffix == " now."
    for bad, message in [({"subject_id": "s9", "pii_type": "email", "template": MASK}, "no subject 's9'"),
                         ({"subject_id": "s1", "pii_type": "ssn", "template": MASK}, "has no 'ssn'"),
                         ({"subject_id": "s1", "pii_type": "email", "template": "no mask"}, "exactly one [MASK]"),
                         ({"subject_id": "s1", "pii_type": "email"}, "template: a non-empty string")]:
        path.write_text(json.dumps(rows[0]) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
        with pytest.raises(InputError, match=rf"masked.jsonl:2: .*{message[:12]}"):
            load_masked_templates(path, [JANE])


def test_sentence_score_is_the_mean_token_logprob() -> None:
    assert sentence_score([None, -1.0, -3.0]) == -2.0
    assert sentence_score([]) == -math.inf


def test_ranking_counts_ties_against_the_truth_and_gives_exposure() -> None:
    ranking = rank_candidates("b", {"a": -1.0, "b": -1.0, "c": -2.0})
    assert ranking.rank == 2 and not ranking.top1 and ranking.top5
    assert [c for c, _ in ranking.ranked] == ["a", "b", "c"]
    assert ranking.exposure == pytest.approx(math.log2(3) - 1)
    missing = rank_candidates("z", {"a": -1.0})
    assert missing.rank == 0 and not missing.top5 and math.isnan(missing.exposure)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(alphabet="abcdef", min_size=1, max_size=3),
                       st.floats(min_value=-50, max_value=0, allow_nan=False), min_size=1, max_size=12),
       st.data())
def test_rank_is_one_plus_the_candidates_scoring_at_least_the_truth(scores: dict[str, float], data) -> None:
    """Reference computation: rank = 1 + #{other candidates with score >= truth's}; exposure in [0, log2 N]."""
    truth = data.draw(st.sampled_from(sorted(scores)))
    ranking = rank_candidates(truth, scores)
    expected = 1 + sum(1 for c, s in scores.items() if c != truth and s >= scores[truth])
    assert ranking.rank == expected
    assert ranking.ranked[ranking.rank - 1][0] == truth  # the list agrees with the rank
    assert [s for _, s in ranking.ranked] == sorted(scores.values(), reverse=True)
    assert 0.0 <= ranking.exposure <= math.log2(len(scores)) + 1e-12
    assert ranking.top1 == (ranking.exposure == pytest.approx(math.log2(len(scores))))


def test_candidates_are_taken_out_of_generated_text_by_type() -> None:
    texts = [" jane.roe@example.com. Call (555) 123-4567.", "mail bob@poe.net or jane.roe@example.com"]
    assert extract_candidates("email", texts) == ["jane.roe@example.com", "bob@poe.net"]
    assert extract_candidates("phone", texts) == ["(555) 123-4567"]
    assert extract_candidates("employer", [" Acme Corp. since 2019", ""]) == ["Acme Corp"]
    assert extract_candidates("address", [" 12 Elm Street, Springfield, IL 62701. Or 9 Oak Rd"]) == \
        ["12 Elm Street, Springfield, IL 62701"]
    assert extract_candidates("birthdate", [" 1968-03-05 or March 5, 1968"]) == ["1968-03-05", "March 5, 1968"]


def test_a_masked_sentence_needs_exactly_one_mask() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        MaskedSentence("s1", "email", f"{MASK} {MASK}", "x", "test")
