"""A synthetic personal corpus with known PII, controlled repetition, a held-out split and canaries.

The public face of three modules, one job each (their names stay importable from here):
- `corpus_types`: what a corpus is (documents, canaries and their candidate space, the corpus and
  its JSONL writer);
- `corpus_loading`: reading a corpus file back, with errors that name the file, line and field;
- `corpus_generation`: generating one from data subjects (why each part exists is told there).
"""

from __future__ import annotations

from privaudit.data.corpus_generation import assign_repeats, generate_corpus
from privaudit.data.corpus_loading import load_corpus
from privaudit.data.corpus_types import (
    CORPUS_FORMAT,
    CORPUS_VERSION,
    DEFAULT_CANARY_FORMAT,
    DOCUMENT_KINDS,
    SPLITS,
    CandidateSpace,
    Canary,
    Corpus,
    Document,
    DocumentKind,
    Split,
    corpus_summary,
    sample_canary_candidates,
)

__all__ = [
    "CORPUS_FORMAT", "CORPUS_VERSION", "DEFAULT_CANARY_FORMAT", "DOCUMENT_KINDS", "SPLITS", "CandidateSpace",
    "Canary", "Corpus", "Document", "DocumentKind", "Split", "assign_repeats", "corpus_summary",
    "generate_corpus", "load_corpus", "sample_canary_candidates",
]
