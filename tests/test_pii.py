"""Offline Presidio: detection of emails, phones, addresses and known names with the network blocked."""

from __future__ import annotations

import contextlib
import hashlib
import socket
import warnings
from typing import Iterator

import pytest

from privaudit import pii
from privaudit.data.corpus import generate_corpus
from privaudit.data.subjects import generate_subjects
from privaudit.errors import InputError

TEXT = ("You can reach Jane Roe at jroe88@mail.com or (415) 201-3344. She lives at "
        "9382 Taylor Court Suite 892, Coreyland, TX 43780; see https://example.org for more.")


@contextlib.contextmanager
def blocked_network() -> Iterator[list[str]]:
    """Refuse and record every connection or DNS lookup.

    Attempts are recorded, not only refused, because tldextract swallows fetch errors and falls back
    silently: an exception alone would not reveal that it tried.
    """
    attempts: list[str] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(repr(args)[:120])
        raise OSError("network blocked by test")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", refuse)
        mp.setattr(socket.socket, "connect_ex", refuse)
        mp.setattr(socket, "getaddrinfo", refuse)
        mp.setattr(socket, "create_connection", refuse)
        yield attempts


@pytest.fixture(scope="module")
def network_attempts() -> Iterator[list[str]]:
    """The network is blocked for this whole module; the analyzer is built from scratch under the block."""
    with blocked_network() as attempts, pytest.MonkeyPatch.context() as mp:
        mp.setattr(pii, "_analyzers", {})
        pii.offline_tld_extractor.cache_clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pii.build_analyzer(use_ner=False)
        yield attempts
    assert attempts == [], f"PII detection tried the network: {attempts}"


def test_the_guard_would_see_a_default_tldextract_download(network_attempts: list[str]) -> None:
    """Control: tldextract without a cache and with its default URLs does try to download."""
    import tldextract

    with blocked_network() as attempts:
        assert tldextract.TLDExtract(cache_dir=None)("a@mail.com").fqdn == "mail.com"  # falls back silently
    assert attempts, "the guard failed to observe a download attempt"


def _by_type(spans: list[pii.PiiSpan]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for s in spans:
        out.setdefault(s.entity_type, []).append(s.text)
    return out


def test_finds_email_phone_address_and_url_offline(network_attempts: list[str]) -> None:
    [spans] = pii.detect_pii([TEXT], use_ner=False)
    found = _by_type(spans)
    assert found["EMAIL_ADDRESS"] == ["jroe88@mail.com"]
    assert found["PHONE_NUMBER"] == ["(415) 201-3344"]
    assert found[pii.ADDRESS] == ["9382 Taylor Court Suite 892, Coreyland, TX 43780"]
    assert found["URL"] == ["https://example.org"]  # not also "mail.com" inside the email
    assert all(TEXT[s.start:s.end] == s.text for s in spans)
    assert network_attempts == []


def test_known_names_are_found_without_ner(network_attempts: list[str]) -> None:
    [spans] = pii.detect_pii(["Tell JANE ROE that Jane Roeland called."], use_ner=False,
                             known_values={"PERSON": ["Jane Roe"]})
    assert [(s.entity_type, s.text) for s in spans] == [("PERSON", "JANE ROE")]  # whole words only
    [plain] = pii.detect_pii(["Tell Jane Roe hello."], use_ner=False)
    assert plain == []  # a blank pipeline has no NER: names need known values


def test_street_without_city_is_found_with_lower_confidence(network_attempts: list[str]) -> None:
    [spans] = pii.detect_pii(["Drop it at 12 Oak Hill Rd. today, not on Monday."], use_ner=False)
    assert [(s.entity_type, s.text) for s in spans] == [(pii.ADDRESS, "12 Oak Hill Rd.")]
    assert spans[0].score < 0.75


def test_entities_filter_restricts_types(network_attempts: list[str]) -> None:
    [spans] = pii.detect_pii([TEXT], entities=["PHONE_NUMBER"], use_ner=False)
    assert {s.entity_type for s in spans} == {"PHONE_NUMBER"}


def test_every_generated_pii_value_is_found_and_filler_is_clean(network_attempts: list[str]) -> None:
    subjects = generate_subjects(15, seed=2)
    corpus = generate_corpus(subjects, seed=2, filler_docs=15)
    by_id = {s.id: s for s in subjects}
    docs = list(corpus.documents)
    spans = pii.detect_pii([d.text for d in docs], use_ner=False,
                           known_values=pii.known_values_from_subjects(subjects))
    for d, found in zip(docs, spans):
        texts = {s.text for s in found}
        if d.kind == "filler":
            assert found == [], (d.text, found)
            continue
        subject = by_id[d.subject_id]
        assert subject.name in texts
        for f in d.mentions:
            if f in ("email", "phone", "address"):
                assert subject.pii_fields()[f] in texts, (f, d.text, found)


def test_anonymize_replace_removes_values_and_counts_them(network_attempts: list[str]) -> None:
    texts, counts = pii.anonymize([TEXT, "nothing here"], known_values={"PERSON": ["Jane Roe"]}, use_ner=False)
    assert texts[1] == "nothing here"
    for value in ("Jane Roe", "jroe88@mail.com", "(415) 201-3344", "Coreyland", "example.org"):
        assert value not in texts[0]
    assert "<EMAIL_ADDRESS>" in texts[0] and "<PERSON>" in texts[0] and f"<{pii.ADDRESS}>" in texts[0]
    assert counts == {"PERSON": 1, "EMAIL_ADDRESS": 1, "PHONE_NUMBER": 1, pii.ADDRESS: 1, "URL": 1}


def test_anonymize_mask_keeps_length(network_attempts: list[str]) -> None:
    [masked], counts = pii.anonymize(["mail jroe88@mail.com now"], operator="mask", use_ner=False)
    assert masked == "mail " + "*" * len("jroe88@mail.com") + " now"
    assert counts == {"EMAIL_ADDRESS": 1}


def test_anonymize_hash_is_sha256_and_salted(network_attempts: list[str]) -> None:
    salt = "0123456789abcdef"
    [hashed], _ = pii.anonymize(["mail jroe88@mail.com"], operator="hash", salt=salt, use_ner=False)
    assert hashed == "mail " + hashlib.sha256(b"jroe88@mail.com" + salt.encode()).hexdigest()
    [a], _ = pii.anonymize(["mail jroe88@mail.com"], operator="hash", use_ner=False)
    [b], _ = pii.anonymize(["mail jroe88@mail.com"], operator="hash", use_ner=False)
    assert a != b  # random per-entity salt: no dictionary attack on hashed emails


def test_bad_arguments_are_input_errors(network_attempts: list[str]) -> None:
    with pytest.raises(InputError, match="unknown anonymization operator"):
        pii.anonymize(["x"], operator="shred", use_ner=False)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="expected a list"):
        pii.detect_pii(["x"], known_values={"PERSON": "Jane Roe"}, use_ner=False)
    with pytest.raises(TypeError):
        pii.detect_pii("one string", use_ner=False)  # type: ignore[arg-type]


@pytest.mark.skipif(pii.ner_available(), reason="an NER model is installed here")
def test_without_ner_model_warns_once_and_refuses_use_ner_true(network_attempts: list[str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pii, "_analyzers", {})
    monkeypatch.setattr(pii, "_warned_no_ner", False)
    with pytest.warns(UserWarning, match="no spaCy NER model"):
        pii.build_analyzer()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        monkeypatch.setattr(pii, "_analyzers", {})
        pii.build_analyzer()
    with pytest.raises(InputError, match="no spaCy NER model installed"):
        pii.build_analyzer(use_ner=True)


def test_analyzer_is_cached_per_process(network_attempts: list[str]) -> None:
    assert pii.build_analyzer(use_ner=False) is pii.build_analyzer(use_ner=False)
