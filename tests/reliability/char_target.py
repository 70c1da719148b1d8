"""A real, deterministic, pure-Python Target for HTTP tests: a character bigram language model.

Why not a mock: the server and client must move real generations and real log-probs, and tests
must be able to check them against a direct computation. A smoothed character bigram model is a
genuine (if weak) language model that loads instantly, so fault tests do not pay for torch.
Characters are its tokens, so it also has per-token log-probs (`token_logprobs`, `echo_logprobs`).
"""

from __future__ import annotations

import hashlib
import math
import random
import zlib
from collections import Counter, defaultdict
from typing import Sequence

from privaudit.serve import TokenLogprobs
from privaudit.targets.base import CHAT, GENERATE, SCORE, TOKEN_LOGPROBS, GenerationConfig, Message

BOS = "\x02"
CORPUS = (
    "Alice Johnson's email is alice.johnson@example.com and her phone is 555-0101. "
    "Bob Smith lives at 42 Elm Street, Springfield. Call him at 555-0199. "
    "The quick brown fox jumps over the lazy dog. Hello! How are you today? I am fine, thank you. "
)


class CharBigramTarget:
    """P(c | previous char) with add-alpha smoothing over a fixed alphabet."""

    def __init__(self, corpus: str = CORPUS, alpha: float = 0.1, *, logprobs: bool = True) -> None:
        self.name = "char-bigram"
        # Without `logprobs`: a target without per-token log-probs, like most chat-only backends.
        self.capabilities = frozenset({GENERATE, SCORE, CHAT} | ({TOKEN_LOGPROBS} if logprobs else set()))
        self.alphabet = sorted(set(corpus) | set(" abcdefghijklmnopqrstuvwxyz.,!?'@-0123456789\n:"))
        self.alpha = alpha
        self._corpus = corpus
        self.counts: dict[str, Counter] = defaultdict(Counter)
        prev = BOS
        for ch in corpus:
            self.counts[prev][ch] += 1
            prev = ch
        self.calls: list[tuple[str, int]] = []  # (method, batch size): lets tests see batching

    def fingerprint(self) -> str:
        return hashlib.sha256(f"{self._corpus}|{self.alpha}".encode()).hexdigest()

    def logprob(self, prev: str, ch: str) -> float:
        row = self.counts.get(prev, Counter())
        total = sum(row.values())
        return math.log((row[ch] + self.alpha) / (total + self.alpha * len(self.alphabet)))

    def _next(self, prev: str, cfg: GenerationConfig, rng: random.Random) -> str:
        scores = [(self.logprob(prev, c), c) for c in self.alphabet]
        if not cfg.do_sample:
            return max(scores, key=lambda s: (s[0], -ord(s[1])))[1]
        weights = [math.exp(lp / cfg.temperature) for lp, _ in scores]
        return rng.choices([c for _, c in scores], weights=weights)[0]

    def _continue(self, prompt: str, cfg: GenerationConfig, sample: int) -> str:
        rng = random.Random(zlib.crc32(f"{cfg.seed}|{sample}|{prompt}".encode()))
        prev, out = (prompt[-1] if prompt else BOS), []
        for _ in range(cfg.max_new_tokens):
            prev = self._next(prev, cfg, rng)
            out.append(prev)
        text = "".join(out)
        for stop in cfg.stop:
            if stop in text:
                text = text[: text.index(stop)]
        return text

    def generate(self, prompts: Sequence[str], cfg: GenerationConfig) -> list[list[str]]:
        self.calls.append(("generate", len(prompts)))
        k = cfg.num_samples if cfg.do_sample else 1
        rows = [[self._continue(p, cfg, s) for s in range(k)] for p in prompts]
        return rows if cfg.do_sample else [r * cfg.num_samples for r in rows]

    def chat(self, conversations: Sequence[Sequence[Message]], cfg: GenerationConfig) -> list[list[str]]:
        self.calls.append(("chat", len(conversations)))
        prompts = ["".join(f"{m['role']}: {m['content']}\n" for m in conv) + "assistant:" for conv in conversations]
        return self.generate(prompts, cfg)

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[float]:
        self.calls.append(("score", len(prompts)))
        out = []
        for p, c in zip(prompts, continuations):
            prev, total = (p[-1] if p else BOS), 0.0
            for ch in c:
                total += self.logprob(prev, ch)
                prev = ch
            out.append(total)
        return out

    def token_logprobs(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[list[float]]:
        """Each continuation character's log-prob given the one before it (what `score` sums)."""
        self.calls.append(("token_logprobs", len(prompts)))
        out = []
        for p, c in zip(prompts, continuations):
            prev, values = (p[-1] if p else BOS), []
            for ch in c:
                values.append(self.logprob(prev, ch))
                prev = ch
            out.append(values)
        return out

    def echo_logprobs(self, texts: Sequence[str], top_k: int = 0) -> list[TokenLogprobs]:
        """Characters as tokens; the first one is predicted from BOS, so it has a log-prob too."""
        self.calls.append(("echo_logprobs", len(texts)))
        out = []
        for text in texts:
            values, tops, prev = [], [], BOS
            for ch in text:
                values.append(self.logprob(prev, ch))
                if top_k:
                    best = sorted(self.alphabet, key=lambda c: -self.logprob(prev, c))[:top_k]
                    tops.append({c: self.logprob(prev, c) for c in best})
                else:
                    tops.append(None)
                prev = ch
            out.append(TokenLogprobs(list(text), values, list(range(len(text))), tops))
        return out

    def close(self) -> None:
        pass
