"""`rag:`: any generating target personalized by retrieval over the user's documents.

The top-k passages retrieved for the question go into the prompt before it (`{context}` then
`{question}` in the template), as a retrieval-augmented personal assistant does (Panza; Salemi &
Zamani 2024). The request's asking user decides which documents retrieval may rank (`per_user`
or `shared`, see `retrieval.DocumentStore`); `for_user(U)` is the same deployment answering U.
The target behaves like any other (generate, chat; `score` where the inner target scores, the
continuation scored given the retrieved context), so every attack runs on it unchanged, and the
context-extraction attack (Zeng et al. 2024) asks it to repeat what it retrieved.

Spec: `rag:CORPUS.jsonl[:top_k=3][:partition=per_user|shared][:retriever=bm25|dense]
[:embedding_model=DIR][:split=all|train|heldout][:template=FILE][:user=ID]:inner=SPEC`
(`inner=` last; the inner spec may hold ':'). Without `user`, a `per_user` request is anonymous
and sees the public documents only.
"""

from __future__ import annotations

import hashlib
from typing import Mapping, Sequence

from privaudit.data.corpus_types import Document
from privaudit.targets.base import (
    CHAT, GENERATE, SCORE, USER_CONTEXT, GenerationConfig, Message, Target, load_target, register_target,
)
from privaudit.targets.retrieval import PUBLIC, DocumentStore, Passage, load_store_documents
from privaudit.targets.wrappers import check_options, inner_spec, int_option, last_user_index, read_template

DEFAULT_TEMPLATE = "Context:\n{context}\n\n{question}"
PASSAGE_SEPARATOR = "\n\n"
OPTIONS = ("top_k", "partition", "retriever", "embedding_model", "split", "template", "user", "inner")


class RagTarget:
    """A target whose prompts carry the top-k documents retrieved for them, as the asking user."""

    def __init__(self, inner: Target, store: DocumentStore, *, top_k: int = 3, template: str = DEFAULT_TEMPLATE,
                 user: str = PUBLIC, owns_inner: bool = True) -> None:
        self.inner = inner
        self.store = store
        self.top_k = top_k
        self.template = template
        self.user = user
        self._owns_inner = owns_inner
        base = f"rag[{store.partition},k={top_k}]:{inner.name}"
        self.name = f"{base}[user={user}]" if user else base
        # Echo log-probs of a whole text and gradients would bypass the retrieved context: not offered.
        self.capabilities = frozenset(inner.capabilities & {GENERATE, CHAT, SCORE}) | {USER_CONTEXT}

    # ------------------------------------------------------------------------------------ users
    def users(self) -> dict[str, tuple[str, ...]]:
        """User id -> the subjects whose data is that user's: each document owner is one user."""
        return {u: (u,) for u in self.store.users()}

    def for_user(self, user: str) -> "RagTarget":
        """The same deployment answering requests as `user` (shares the inner model and the index)."""
        return RagTarget(self.inner, self.store, top_k=self.top_k, template=self.template, user=user,
                         owns_inner=False)

    def with_documents(self, documents: Sequence[Document]) -> "RagTarget":
        """The same deployment after `documents` entered its store (context extraction's injected document)."""
        return RagTarget(self.inner, self.store.with_documents(documents), top_k=self.top_k, template=self.template,
                         user=self.user, owns_inner=False)

    # -------------------------------------------------------------------------------- retrieval
    def retrieve(self, questions: Sequence[str]) -> list[list[Passage]]:
        """The passages each question retrieves for this target's user (what the prompt will hold)."""
        return [self.store.retrieve(q, self.user, self.top_k) for q in questions]

    def augment(self, question: str, passages: Sequence[Passage]) -> str:
        context = PASSAGE_SEPARATOR.join(p.text for p in passages)
        return self.template.replace("{context}", context).replace("{question}", question)

    def _augmented(self, questions: Sequence[str]) -> list[str]:
        return [self.augment(q, ps) for q, ps in zip(questions, self.retrieve(questions))]

    # ------------------------------------------------------------------------------- the target
    def fingerprint(self) -> str:
        settings = f"{self.inner.fingerprint()}\x1f{self.store.fingerprint()}\x1f{self.top_k}\x1f{self.template}\x1f{self.user}"
        return f"rag:{hashlib.sha256(settings.encode()).hexdigest()[:16]}"

    def generate(self, prompts: Sequence[str], cfg: GenerationConfig) -> list[list[str]]:
        return self.inner.generate(self._augmented(prompts), cfg)

    def render_prompt(self, prompt: str) -> str:
        """The raw-completion prompt the inner target sees for `prompt` asked as this user."""
        return self._augmented([prompt])[0]

    def render_chat(self, conv: Sequence[Message]) -> list[dict[str, str]]:
        """The conversation the inner target sees: the last user message with its retrieved context.

        Exposed so requests of several users go to the inner model in one batched call.
        """
        out = [dict(m) for m in conv]
        i = last_user_index(out)
        out[i]["content"] = self.render_prompt(out[i]["content"])
        return out

    def chat(self, conversations: Sequence[Sequence[Message]], cfg: GenerationConfig) -> list[list[str]]:
        return self.inner.chat([self.render_chat(c) for c in conversations], cfg)

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[float]:
        """The inner model's log-likelihood of each continuation given the retrieved context and prompt."""
        return self.inner.score(self._augmented(prompts), continuations)

    def close(self) -> None:
        if self._owns_inner:
            self.inner.close()

    def __repr__(self) -> str:
        return f"RagTarget({self.inner!r}, partition={self.store.partition!r}, top_k={self.top_k}, user={self.user!r})"


@register_target("rag")
def rag_factory(location: str, options: Mapping[str, str]) -> RagTarget:
    """Build `rag:CORPUS.jsonl[:options]:inner=SPEC`; store, partition and options are checked before the inner loads."""
    check_options("rag", location, options, OPTIONS)
    inner = inner_spec("rag", location, options)
    top_k = int_option("rag", options, "top_k", 3)
    template = read_template("rag", options.get("template", ""), DEFAULT_TEMPLATE, ("context", "question"))
    store = DocumentStore(load_store_documents(location, options.get("split", "all")),
                          partition=options.get("partition", "per_user"), retriever=options.get("retriever", "bm25"),
                          embedding_model=options.get("embedding_model", ""))
    return RagTarget(load_target(inner), store, top_k=top_k, template=template, user=options.get("user", PUBLIC))
