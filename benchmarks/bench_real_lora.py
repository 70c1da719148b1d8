"""Real LoRA personalization (issue 23): training time, peak RSS and each audit's time and figures.

Trains `RealRecipe` (or `--small`: the CI recipe) on the builtin SmolLM2-135M into a fresh cache
folder (so the training is measured, not reused), then runs the audit `privaudit demo --real` runs
(PII templates + likelihood + soft prompt with the base as baseline, membership with the base as
reference), one attack at a time so each gets its own wall time, and prints the headline figures
with their intervals. `--defenses` also runs the comparison (LoRA, scrub, DP-SGD LoRA at epsilon 8
subject level, 2-client Flower federated LoRA) and prints epsilon, AUC and held-out perplexity.
No assertions: a measurement. Results go in benchmarks/RESULTS.md ("Real LoRA").
Run: `python benchmarks/bench_real_lora.py [--small] [--defenses] [--out DIR]`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine_info, rss_mib  # noqa: E402


def fmt(est) -> str:
    return f"{est.value:.3f} [{est.low:.3f}, {est.high:.3f}] (n={est.n})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="the CI recipe (SMALL_REAL_RECIPE)")
    parser.add_argument("--defenses", action="store_true", help="also run the defense comparison")
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-real-lora-"))
    os.environ.setdefault("PRIVAUDIT_CACHE_DIR", str(out / "cache"))
    # the converted builtin is reused from the user cache: converting the GGUF is not this benchmark
    from privaudit.audit import AuditSpec, run_audit
    from privaudit.defenses.registry import load_defended
    from privaudit.demo_real import real_audit_spec, real_compare_spec
    from privaudit.personalized_real import SMALL_REAL_RECIPE, RealRecipe, build_real_setup

    recipe = SMALL_REAL_RECIPE if args.small else RealRecipe()
    print("machine:", machine_info())
    print("recipe:", recipe)
    started, cpu0 = time.perf_counter(), time.process_time()
    setup = build_real_setup(recipe)
    cpu = time.process_time() - cpu0
    rec = load_defended(setup.root / "finetuned")
    print(f"training: {time.perf_counter() - started:.1f} s wall, {cpu:.0f} CPU s (setup incl. base load), loop {rec.training.seconds:.1f} s, "
          f"{rec.training.steps} steps, {len(setup.corpus.train_texts())} sequences, "
          f"held-out ppl base {rec.training.base_heldout_perplexity:.2f} -> {rec.training.heldout_perplexity:.2f}, "
          f"peak RSS {rss_mib():.0f} MiB")
    full = real_audit_spec(setup, out / "audit")
    for name, params in full.attacks.items():
        spec = AuditSpec(targets=full.targets, attacks={name: params}, out=out / f"audit-{name}", seed=full.seed,
                         batch_size=full.batch_size)
        t0, cpu0 = time.perf_counter(), time.process_time()
        (result,) = run_audit(spec)
        print(f"audit {name}: {time.perf_counter() - t0:.1f} s wall, {time.process_time() - cpu0:.0f} CPU s, "
              f"peak RSS {rss_mib():.0f} MiB")
        for key in ("exact_match_rate", "exact_match_rate_baseline", "exact_match_rate_minus_baseline",
                    "likelihood_top1_rate", "likelihood_top1_rate_baseline", "soft_prompt_exact_match_rate",
                    "soft_prompt_template_exact_match_rate", "soft_prompt_lift", "auc", "auc.reference",
                    "tpr_at_1pct_fpr"):
            if key in result.metrics:
                print(f"  {name}.{key} = {fmt(result.metrics[key])}")
    if args.defenses:
        from privaudit.compare import run_comparison

        compare = real_compare_spec(setup, out / "compare")
        t0 = time.perf_counter()
        comparison = run_comparison(compare)
        print(f"comparison: {time.perf_counter() - t0:.1f} s, peak RSS {rss_mib():.0f} MiB (this process)")
        print(comparison.table.to_string())
        for variant, record in comparison.variants.items():
            t = record.training
            eps = f"epsilon {record.privacy.epsilon:.2f} (delta {record.privacy.delta:g})" if record.privacy else ""
            print(f"  {variant}: train {t.seconds:.1f} s, held-out ppl {t.base_heldout_perplexity:.2f} -> "
                  f"{t.heldout_perplexity:.2f} {eps}")


if __name__ == "__main__":
    main()
