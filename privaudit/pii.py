"""PII detection and anonymization with Presidio that never touches the network.

Presidio's default engine downloads a spaCy model, and its email recognizer calls `tldextract`,
which fetches the Public Suffix List over HTTP on first use. Here:
- the NLP engine is `spacy.blank("en")` unless an NER model (en_core_web_lg/md/sm) is installed,
  in which case PERSON/LOCATION come from it; without one we say so once and rely on patterns plus
  exact matching of *known* values (the audit knows its data subjects' names and addresses);
- the email recognizer validates domains with a `TLDExtract` over its bundled suffix snapshot;
- a pattern recognizer finds US-style street addresses ("12 Oak St, Springfield, IL 62704").

Everything an attack, a defense (scrubbing) or a report needs goes through `detect_pii` and
`anonymize`, so every part of privaudit sees the same definition of "PII found".
"""

from __future__ import annotations

import logging
import re
import threading
import warnings
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Iterable, Literal, Mapping, Sequence

if TYPE_CHECKING:  # presidio/spacy imports are slow (seconds); load them on first use only
    from presidio_analyzer import AnalyzerEngine, EntityRecognizer

from privaudit.errors import InputError

logger = logging.getLogger("privaudit.pii")

NER_MODELS: tuple[str, ...] = ("en_core_web_lg", "en_core_web_md", "en_core_web_sm")
ADDRESS = "ADDRESS"
# Which Presidio entity type each data-subject field corresponds to (for known-value matching).
SUBJECT_FIELD_ENTITIES: dict[str, str] = {
    "name": "PERSON", "email": "EMAIL_ADDRESS", "phone": "PHONE_NUMBER", "address": ADDRESS,
    "birthdate": "DATE_TIME", "employer": "ORGANIZATION",
}
KNOWN_VALUE_SCORE = 0.9
# National formats checked by the phone recognizer. Presidio's default checks 8 regions, which made
# it 65% of detection time (4x slower than these two); numbers written with +CC are found either way.
PHONE_REGIONS: tuple[str, ...] = ("US", "GB")
Operator = Literal["replace", "mask", "hash"]

_US_STATES = (
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ "
    "NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR GU VI AS MP FM MH PW AA AE AP"
).split()
_STREET_SUFFIXES = (
    "Street St Avenue Ave Road Rd Boulevard Blvd Lane Ln Drive Dr Court Ct Way Place Pl Terrace Ter "
    "Circle Cir Parkway Pkwy Highway Hwy Square Sq Trail Trl Loop Plaza Ridge Heights Hts Gardens "
    "Park Crossing Xing Alley Row Run Path Pike Turnpike Expressway Freeway Route Point Pt Green "
    "Hill Hills Grove Glen Creek Crescent Cres Walk Mall Manor Meadow Meadows Ville Village Villages "
    "Bridge Plains Port Springs Station Summit Valley View Views Vista Estates Harbor Island Isle "
    "Junction Knoll Landing Lake Lakes Mill Mills Mission Oval Pass Pines Shore Shores Stream Track "
    "Falls Ford Fork Forks Haven Key Keys Light Lights Lock Locks Neck Orchard Ranch Rapids Rest "
    "Ridges Spur Squares Trace Tunnel Underpass Union Unions Ways Wells Extension Ext Fields Flats"
).split()
_WORD = r"[A-Z][A-Za-z'\-]*\.?"
_UNIT = r"(?:,?\s+(?:Apt\.?|Apartment|Suite|Ste\.?|Unit|Fl\.?|Floor|\#)\s*[A-Za-z0-9\-]+)"
_ZIP = r"\d{5}(?:-\d{4})?"
# "12 Oak Hill Rd Apt. 3, Springfield, IL 62704": the city/state/zip tail makes it near-certain.
_FULL_ADDRESS = (rf"\b\d{{1,6}}(?:\s+{_WORD}){{1,5}}{_UNIT}?,\s*{_WORD}(?:\s+{_WORD}){{0,3}},\s*"
                 rf"(?:{'|'.join(_US_STATES)})\s+{_ZIP}\b")
# "12 Oak Hill Rd" alone: plausible with a known street suffix, weaker without the tail.
_STREET_ONLY = (rf"\b\d{{1,6}}(?:\s+{_WORD}){{0,3}}\s+(?:{'|'.join(_STREET_SUFFIXES)})\b\.?{_UNIT}?")
# The address patterns, strongest first, for callers that match without Presidio (reconstruction's
# candidate extraction from generated text).
ADDRESS_PATTERNS: tuple[str, ...] = (_FULL_ADDRESS, _STREET_ONLY)


@dataclass(frozen=True)
class PiiSpan:
    """One detected PII span: Presidio's entity type, character offsets, confidence, the text."""

    entity_type: str
    start: int
    end: int
    score: float
    text: str


def ner_model_name() -> str | None:
    """The installed spaCy NER model privaudit would use, or None (never downloads one)."""
    import spacy.util

    for name in NER_MODELS:
        if spacy.util.is_package(name):
            return name
    return None


def ner_available() -> bool:
    """Whether PERSON/LOCATION can come from an NER model (else only from known values)."""
    return ner_model_name() is not None


@lru_cache(maxsize=1)
def offline_tld_extractor() -> Any:
    """A TLDExtract over the bundled Public Suffix snapshot: no HTTP, no cache folder, no delay."""
    import tldextract

    return tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)


def _offline_recognizers() -> list[EntityRecognizer]:
    """Recognizers privaudit adds or swaps in: offline email validation, US street addresses, phones."""
    from presidio_analyzer import Pattern, PatternRecognizer
    from presidio_analyzer.predefined_recognizers import EmailRecognizer, PhoneRecognizer

    class OfflineEmailRecognizer(EmailRecognizer):
        """Presidio's email recognizer, validating domains against the bundled suffix list."""

        def validate_result(self, pattern_text: str) -> bool:
            return offline_tld_extractor()(pattern_text).fqdn != ""

    class UsStreetAddressRecognizer(PatternRecognizer):
        """US-style street addresses; patterns are data, Presidio does the matching."""

        PATTERNS = [Pattern("US address with city, state, zip", _FULL_ADDRESS, 0.75),
                    Pattern("US street with suffix", _STREET_ONLY, 0.45)]
        CONTEXT = ["address", "live", "lives", "living", "ship", "shipped", "deliver", "mail", "street"]

        def __init__(self) -> None:
            super().__init__(supported_entity=ADDRESS, patterns=self.PATTERNS, context=self.CONTEXT,
                             supported_language="en", name="UsStreetAddressRecognizer",
                             global_regex_flags=re.DOTALL | re.MULTILINE)

    return [OfflineEmailRecognizer(), UsStreetAddressRecognizer(), PhoneRecognizer(supported_regions=PHONE_REGIONS)]


_warned_no_ner = False
_build_lock = threading.Lock()
_analyzers: dict[bool, AnalyzerEngine] = {}


def build_analyzer(use_ner: bool | None = None) -> AnalyzerEngine:
    """A Presidio AnalyzerEngine that works offline, cached per process (per `use_ner` choice).

    `use_ner=None` uses an installed NER model when there is one; True requires one (InputError
    otherwise); False always uses a blank pipeline (patterns and known values only, faster).
    """
    model = ner_model_name()
    if use_ner and model is None:
        raise InputError(f"no spaCy NER model installed (install one of {', '.join(NER_MODELS)})")
    ner = bool(model) if use_ner is None else bool(use_ner)
    with _build_lock:
        if ner not in _analyzers:
            _analyzers[ner] = _make_analyzer(model if ner else None)
    return _analyzers[ner]


def _make_analyzer(model: str | None) -> AnalyzerEngine:
    global _warned_no_ner
    import spacy
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    class OfflineSpacyNlpEngine(SpacyNlpEngine):
        """Loads an installed model by name, or `spacy.blank("en")`; never calls spacy download."""

        def load(self) -> None:
            self.nlp = {"en": spacy.load(model) if model else spacy.blank("en")}

    engine = OfflineSpacyNlpEngine(models=[{"lang_code": "en", "model_name": model or "blank:en"}])
    engine.load()
    if model is None and not _warned_no_ner:
        _warned_no_ner = True
        warnings.warn(
            "no spaCy NER model installed: PERSON/LOCATION are found only as known subject values; "
            f"install one of {', '.join(NER_MODELS)} for open-ended name detection",
            stacklevel=3)
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=engine)
    registry.remove_recognizer("EmailRecognizer")  # its tldextract call would fetch over HTTP
    registry.remove_recognizer("PhoneRecognizer")  # replaced by one checking PHONE_REGIONS only
    for recognizer in _offline_recognizers():
        registry.add_recognizer(recognizer)
    return AnalyzerEngine(nlp_engine=engine, registry=registry, supported_languages=["en"])


def known_value_recognizers(known_values: Mapping[str, Sequence[str]]) -> list[EntityRecognizer]:
    """One deny-list recognizer per entity type: literal, case-insensitive, whole-word matches."""
    from presidio_analyzer import Pattern, PatternRecognizer

    out: list[EntityRecognizer] = []
    for entity, values in known_values.items():
        if not isinstance(entity, str) or not entity:
            raise InputError(f"known_values: entity type must be a non-empty string, got {entity!r}")
        if isinstance(values, str):
            raise InputError(f"known_values[{entity!r}]: expected a list of values, got a string")
        literal = sorted({v.strip() for v in values if isinstance(v, str) and v.strip()}, key=len, reverse=True)
        if not literal:
            continue
        # Longest first, so "Jane Roe-Smith" wins over "Jane Roe"; \W/edge guards keep whole words.
        regex = r"(?<![\w])(?:" + "|".join(re.escape(v) for v in literal) + r")(?![\w])"
        out.append(PatternRecognizer(supported_entity=entity, name=f"KnownValues[{entity}]",
                                     patterns=[Pattern(f"known {entity}", regex, KNOWN_VALUE_SCORE)],
                                     supported_language="en"))
    return out


def known_values_from_subjects(subjects: Iterable[Any]) -> dict[str, list[str]]:
    """Entity type -> literal values of the given data subjects (names, emails, phones, ...)."""
    out: dict[str, list[str]] = {}
    for s in subjects:
        fields = {"name": s.name, **s.pii_fields()}
        for key, value in fields.items():
            out.setdefault(SUBJECT_FIELD_ENTITIES.get(key, key.upper()), []).append(value)
    return out


def _drop_nested(spans: list[PiiSpan]) -> list[PiiSpan]:
    """Drop a span inside another at least as confident (e.g. URL 'mail.com' inside an email)."""
    keep = []
    for s in spans:
        inside = any(o is not s and o.start <= s.start and s.end <= o.end and o.score >= s.score
                     and (o.end - o.start > s.end - s.start or o.entity_type != s.entity_type and o.score > s.score)
                     for o in spans)
        if not inside:
            keep.append(s)
    return sorted(keep, key=lambda s: (s.start, -s.end, s.entity_type))


def detect_pii(
    texts: Sequence[str],
    *,
    entities: Sequence[str] | None = None,
    known_values: Mapping[str, Sequence[str]] | None = None,
    score_threshold: float = 0.4,
    use_ner: bool | None = None,
    batch_size: int = 64,
) -> list[list[PiiSpan]]:
    """PII spans per text (sorted by position), offline; spaCy runs batched through `nlp.pipe`.

    `known_values` maps an entity type ("PERSON", "ADDRESS", ...) to literal values to find even
    without NER. `entities` restricts the types reported (None: all).
    """
    if isinstance(texts, str):
        raise TypeError("detect_pii takes a sequence of texts, not one string")
    analyzer = build_analyzer(use_ner)
    ad_hoc = known_value_recognizers(known_values or {})
    wanted = list(entities) if entities is not None else None
    results: list[list[PiiSpan]] = []
    texts = [str(t) for t in texts]
    for text, artifacts in analyzer.nlp_engine.process_batch(texts, "en", batch_size=batch_size):
        found = analyzer.analyze(text, language="en", entities=wanted, score_threshold=score_threshold,
                                 nlp_artifacts=artifacts, ad_hoc_recognizers=ad_hoc or None)
        spans = [PiiSpan(r.entity_type, r.start, r.end, round(float(r.score), 4), text[r.start:r.end])
                 for r in found]
        results.append(_drop_nested(spans))
    return results


def operator_config(operator: str, salt: bytes | str | None = None) -> Any:
    """The presidio-anonymizer OperatorConfig for privaudit's operator names."""
    from presidio_anonymizer.entities import OperatorConfig

    if operator == "replace":  # "<EMAIL_ADDRESS>" (Presidio's default new value is the entity type)
        return OperatorConfig("replace")
    if operator == "mask":
        return OperatorConfig("mask", {"masking_char": "*", "chars_to_mask": 10**6, "from_end": False})
    if operator == "hash":
        # Without a salt Presidio salts each entity randomly, so hashes cannot be reversed by
        # hashing candidate emails; with one, the same value always gets the same pseudonym.
        params: dict[str, Any] = {"hash_type": "sha256"}
        if salt is not None:
            params["salt"] = salt
        return OperatorConfig("hash", params)
    raise InputError(f"unknown anonymization operator '{operator}' (use replace, mask or hash)")


@lru_cache(maxsize=1)
def _anonymizer() -> Any:
    from presidio_anonymizer import AnonymizerEngine

    return AnonymizerEngine()


def anonymize(
    texts: Sequence[str],
    *,
    operator: Operator = "replace",
    entities: Sequence[str] | None = None,
    known_values: Mapping[str, Sequence[str]] | None = None,
    score_threshold: float = 0.4,
    use_ner: bool | None = None,
    salt: bytes | str | None = None,
) -> tuple[list[str], Counter[str]]:
    """Texts with detected PII replaced/masked/hashed, and how many spans of each type were changed."""
    from presidio_analyzer import RecognizerResult

    config = operator_config(operator, salt)
    spans = detect_pii(texts, entities=entities, known_values=known_values, score_threshold=score_threshold,
                       use_ner=use_ner)
    engine = _anonymizer()
    out: list[str] = []
    counts: Counter[str] = Counter()
    for text, found in zip(texts, spans):
        if not found:
            out.append(str(text))
            continue
        result = engine.anonymize(
            text=str(text),
            analyzer_results=[RecognizerResult(s.entity_type, s.start, s.end, s.score) for s in found],
            operators={"DEFAULT": config})
        out.append(result.text)
        counts.update(item.entity_type for item in result.items)
    return out, counts

