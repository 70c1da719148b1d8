"""The "Must show" figures of federated DP (issue 17): leakage and utility of DP-FedAvg next to DP-SGD's.

    python benchmarks/federated_dp_figures.py OUT_DIR [NOISE_MULTIPLIER ...]

The demo's embedded setup (seed 0) and the demo's comparison attacks (PII extraction of the email
field with likelihood, membership inference), on the demo's variants `none`, `dp_sgd_subject`
(user-level DP-SGD at epsilon 8) and `federated` (2 clients, 1 round), plus `federated_dp`
(the same federation with DP-FedAvg at the defense's defaults, clip 1e-3) for each noise multiplier
given (default: 1.0). Prints one row per variant: epsilon, privacy unit, held-out perplexity,
email exact-match rate and membership AUC with their intervals. A measurement, not a test: the
numbers go into benchmarks/RESULTS.md and the README by hand.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def main(out: Path, sigmas: list[float]) -> None:
    from privaudit.compare import CompareSpec, check_compare_spec, run_comparison
    from privaudit.demo import DemoOptions, demo_compare_spec
    from privaudit.personalized import PersonalizationRecipe, build_personalized_setup
    from privaudit.progress import ProgressReporter

    progress = ProgressReporter(quiet=True)
    started = time.perf_counter()
    setup = build_personalized_setup(out / "setup", PersonalizationRecipe(seed=0), progress)
    demo = demo_compare_spec(DemoOptions(out=out), setup)
    defenses = {v: demo.defenses[v] for v in ("none", "dp_sgd_subject", "federated")}
    for sigma in sigmas:
        defenses[f"federated_dp_{sigma:g}"] = {**demo.defenses["federated"], "defense": "federated_dp",
                                               "noise_multiplier": sigma}
    spec = CompareSpec(base=demo.base, corpus=demo.corpus, subjects=demo.subjects, out=out / "compare",
                       defenses=defenses, attacks=demo.attacks, seed=0, batch_size=demo.batch_size)
    check_compare_spec(spec, "federated_dp_figures")
    comparison = run_comparison(spec, progress=progress, source="federated_dp_figures")
    print(f"{'variant':<22} {'epsilon':>8} {'unit':>8} {'ppl':>8}  {'email exact [95%]':<22} {'membership AUC [95%]':<22}")
    for row in comparison.table.to_dict("records"):
        def cell(key: str) -> str:
            v, lo, hi = row.get(key), row.get(key + ".low"), row.get(key + ".high")
            return "-" if not _finite(v) else f"{v:.2f} [{lo:.2f}, {hi:.2f}]"

        eps = row.get("epsilon") if _finite(row.get("epsilon")) else None
        print(f"{row['variant']:<22} {'-' if eps is None else f'{eps:.2f}':>8} {str(row.get('privacy_unit') or '-'):>8} "
              f"{row['heldout_perplexity']:>8.1f}  {cell('pii.exact_match_rate'):<22} {cell('membership.auc'):<22}")
    print(f"total {time.perf_counter() - started:.0f} s")


def _finite(x: object) -> bool:
    return isinstance(x, (int, float)) and x == x and x not in (float("inf"), float("-inf"))


if __name__ == "__main__":
    main(Path(sys.argv[1]), [float(x) for x in sys.argv[2:]] or [1.0])
