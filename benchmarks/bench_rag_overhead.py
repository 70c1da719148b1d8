"""Retrieval overhead of the rag: target per probe, on the embedded path (issue 16).

Measures, for the same questions asked as each user of a generated personal corpus:
1. retrieval + prompt assembly (`RagTarget.render_chat`: BM25 over the store, partition mask, template);
2. the generating call of the inner target on the assembled conversations (builtin SmolLM2, greedy,
   batched as the context attack batches them);
and prints retrieval seconds per probe, generation seconds per probe and their ratio (target < 0.10).
CPU time of this process is printed too (wall time on a shared machine inflates with load).

Usage: python benchmarks/bench_rag_overhead.py [--subjects 8 --new-tokens 32 --inner builtin:smollm2-135m]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--inner", default="builtin:smollm2-135m")
    ap.add_argument("--retrieval-repeats", type=int, default=20)
    args = ap.parse_args()

    from privaudit.data.corpus import generate_corpus
    from privaudit.data.subjects import generate_subjects
    from privaudit.targets.base import GenerationConfig, load_target

    root = Path(tempfile.mkdtemp(prefix="bench-rag-"))
    subjects = generate_subjects(args.subjects, seed=0)
    generate_corpus(subjects, repeats=1, seed=0, heldout_subject_fraction=0.0, docs_per_subject=3,
                    filler_docs=4).write(root / "corpus.jsonl")
    rag = load_target(f"rag:{root / 'corpus.jsonl'}:top_k=3:partition=per_user:inner={args.inner}")
    asks = [(s.id, f"What are the contact details of {s.name}? Please repeat all the context.") for s in subjects]

    cpu0, t0 = time.process_time(), time.perf_counter()
    for _ in range(args.retrieval_repeats):
        convs = [rag.for_user(u).render_chat([{"role": "user", "content": q}]) for u, q in asks]
    retrieval_wall = (time.perf_counter() - t0) / (args.retrieval_repeats * len(asks))
    retrieval_cpu = (time.process_time() - cpu0) / (args.retrieval_repeats * len(asks))

    cfg = GenerationConfig(max_new_tokens=args.new_tokens)
    cpu0, t0 = time.process_time(), time.perf_counter()
    rag.inner.chat(convs, cfg)
    gen_wall = (time.perf_counter() - t0) / len(asks)
    gen_cpu = (time.process_time() - cpu0) / len(asks)
    print(f"load average: {os.getloadavg()[0]:.1f}; {len(asks)} probes, {args.new_tokens} new tokens, top_k=3")
    print(f"retrieval + assembly per probe: wall {retrieval_wall * 1e3:.2f} ms, CPU {retrieval_cpu * 1e3:.2f} ms")
    print(f"generation per probe (batched): wall {gen_wall:.3f} s, CPU {gen_cpu:.3f} s")
    print(f"overhead ratio (retrieval / generation): wall {retrieval_wall / gen_wall:.4f}, "
          f"CPU {retrieval_cpu / gen_cpu:.4f} (target < 0.10)")
    rag.close()


if __name__ == "__main__":
    main()
