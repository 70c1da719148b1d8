"""PII-attack throughput vs bare transformers loops, side by side in one process (issue 9).

Measures, on one random-init Llama of realistic-ish width (privaudit.models.tiny, CPU or GPU):

1. attack probes/s: `run_extraction` (prompts -> HFTarget.generate -> matching -> RunStore records)
   vs a bare batched `model.generate` loop over the same prompts, batch size and greedy settings
   (target: >= 0.9x, i.e. the attack's bookkeeping costs under 10%);
2. the same vs one prompt at a time (`batch_size=1`, what a naive loop does; expect >= 5x);
3. likelihood pairs/s: `run_likelihood` (truth + candidates per probe -> HFTarget.score)
   vs a bare right-padded batched forward pass with log_softmax/gather over the same token rows
   (target: >= 0.9x).

Usage: python benchmarks/bench_pii_probing.py [--hidden 512 --layers 4 --probes 96 --batch-size 16]
Prints each rate and the ratios. Numbers depend on the machine's load; run it alone for figures.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """Fastest of `repeats` runs (after the caller's warm-up): the least load-disturbed figure."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--probes", type=int, default=96)
    ap.add_argument("--single-probes", type=int, default=16, help="probes timed one at a time (slow path)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--candidates", type=int, default=9)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default=None)
    args = ap.parse_args()

    import torch

    from privaudit.attacks.base import RunContext
    from privaudit.attacks.pii_extraction import run_extraction, run_likelihood
    from privaudit.attacks.pii_likelihood import candidate_pool, draw_candidates
    from privaudit.attacks.pii_probes import build_probes, load_templates
    from privaudit.data.corpus import generate_corpus
    from privaudit.data.subjects import generate_subjects
    from privaudit.engine.store import RunStore
    from privaudit.models.tiny import build_tiny_model
    from privaudit.targets.base import GenerationConfig
    from privaudit.targets.hf import HFTarget

    torch.manual_seed(0)
    work = Path(tempfile.mkdtemp(prefix="bench_pii_"))
    subjects = generate_subjects(max(8, args.probes // 8), seed=0)
    texts = generate_corpus(subjects, repeats=1, seed=0).train_texts()
    model_dir = build_tiny_model(texts, work / "model", hidden_size=args.hidden, num_layers=args.layers,
                                 num_heads=8, max_position=512)
    bs = args.batch_size
    target = HFTarget(model_dir, device=args.device, batch_size=bs)
    model, tok, device = target.model, target.tokenizer, target.device
    probes = build_probes(subjects, load_templates(), pii_types=["email", "phone"])[: args.probes]
    cfg = GenerationConfig(max_new_tokens=args.max_new_tokens)
    params = sum(p.numel() for p in model.parameters())
    print(f"model: hidden={args.hidden} layers={args.layers} params={params / 1e6:.1f}M device={device} "
          f"torch_threads={torch.get_num_threads()}; {len(probes)} probes, batch {bs}, "
          f"{args.max_new_tokens} new tokens, greedy")

    run_no = [0]

    def attack_generate(sub=probes) -> None:
        run_no[0] += 1
        with RunStore(work / f"run-{run_no[0]}") as store:
            ctx = RunContext(store=store, seed=0, batch_size=bs)
            assert run_extraction(target, sub, cfg, ctx, "pii", "bench", "extract") == len(sub)

    def bare_generate(prompts: list[str], size: int) -> None:
        eos = target._eos_ids()
        for start in range(0, len(prompts), size):
            enc = tok(prompts[start : start + size], return_tensors="pt", padding=True).to(device)
            with torch.inference_mode():
                out = model.generate(**enc, max_new_tokens=args.max_new_tokens, do_sample=False, num_beams=1,
                                     pad_token_id=tok.pad_token_id, eos_token_id=eos)
            tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)

    prompts = [p.prompt for p in probes]
    single = prompts[: args.single_probes]
    attack_generate(probes[:bs])  # warm-up (allocator, kernels)
    bare_generate(prompts[:bs], bs)
    t_attack = best_time(attack_generate, args.repeats)
    t_bare = best_time(lambda: bare_generate(prompts, bs), args.repeats)
    t_single = best_time(lambda: bare_generate(single, 1), 1)
    r_attack, r_bare = len(prompts) / t_attack, len(prompts) / t_bare
    r_single = len(single) / t_single
    print(f"generate  attack {r_attack:8.2f} probes/s | bare batched {r_bare:8.2f} | one at a time {r_single:8.2f}")
    print(f"          attack / bare batched = {r_attack / r_bare:.2f}x (target >= 0.9x); "
          f"attack / one-at-a-time = {r_attack / r_single:.2f}x (expect >= 5x)")

    # ---- likelihood: truth + candidates per probe, as run_likelihood builds them
    pool = candidate_pool(subjects, args.candidates, seed=0)
    pairs = []
    for p in probes:
        for value in [p.truth, *draw_candidates(p.truth, p.pii_type, pool, args.candidates, 0, p.subject_id)]:
            pairs.append((p.prompt, " " + value))
    items = [target._score_item(pr, c) for pr, c in pairs]

    def attack_score() -> None:
        run_no[0] += 1
        with RunStore(work / f"run-{run_no[0]}") as store:
            ctx = RunContext(store=store, seed=0, batch_size=bs)
            assert run_likelihood(target, probes, pool, args.candidates, ctx, "pii", "bench", "lik") == len(probes)

    def bare_score(size: int) -> None:
        for start in range(0, len(items), size):
            chunk = items[start : start + size]
            width = max(len(it.ids) for it in chunk)
            ids = torch.full((len(chunk), width), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, it in enumerate(chunk):
                ids[row, : len(it.ids)] = torch.tensor(it.ids)
                mask[row, : len(it.ids)] = 1
            ids, mask = ids.to(device), mask.to(device)
            with torch.inference_mode():
                logp = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float().log_softmax(-1)
                tok_lp = logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
                sums = [float(tok_lp[row, it.start - 1 : len(it.ids) - 1].sum()) for row, it in enumerate(chunk)]
            del sums

    bare_score(bs)
    t_lik = best_time(attack_score, args.repeats)
    t_bare_lik = best_time(lambda: bare_score(bs), args.repeats)
    r_lik, r_bare_lik = len(pairs) / t_lik, len(pairs) / t_bare_lik
    print(f"score     attack {r_lik:8.2f} pairs/s  | bare batched forward {r_bare_lik:8.2f}")
    print(f"          attack / bare batched = {r_lik / r_bare_lik:.2f}x (target >= 0.9x)")


if __name__ == "__main__":
    main()
