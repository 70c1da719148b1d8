"""The "Must show" figures of the one-run DP audit (issue 22), fixed seeds, the embedded tiny model.

    python benchmarks/dp_audit_figures.py OUT_ROOT [CASE ...]

Each case trains its recipe on the embedded corpus plus fresh canaries through `privaudit dp-audit`
(the built-in path) and prints one row: recipe, unit, canaries, claimed epsilon, the lower bound at
95%, guesses/correct and the signal. Cases (default: all): the keys of CASES. The public base
is built once under OUT_ROOT/_setup and copied into each case's folder. Results go to benchmarks/RESULTS.md by hand (measurements,
not tests).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

N, EPOCHS = 200, 12
CASES = {
    "none-record": ("none", "record", {"epochs": EPOCHS}),
    "none-subject": ("none", "subject", {"epochs": EPOCHS}),
    # a short fine-tune (partial memorization): the same recipe audited at both units
    "none4-record": ("none", "record", {"epochs": 4}),
    "none4-subject": ("none", "subject", {"epochs": 4}),
    "dp8-record": ("dp_sgd", "record", {"epochs": EPOCHS, "target_epsilon": 8.0}),
    "dp8-subject": ("dp_sgd", "subject", {"epochs": EPOCHS, "target_epsilon": 8.0, "privacy_unit": "subject",
                                          "max_length": 256}),
    "dp8doc-subject": ("dp_sgd", "subject", {"epochs": EPOCHS, "target_epsilon": 8.0}),
    "broken-record": ("broken_dp_sgd", "record", {"epochs": EPOCHS, "claimed_epsilon": 1.0}),
}


def run_case(root: Path, name: str) -> dict:
    import broken_dp  # noqa: F401  (registers the test-only broken recipe)
    from privaudit.cli import main
    from privaudit.dpaudit.train import audit_recipe
    from privaudit.personalized import build_personalized_setup

    setup = root / "_setup"
    build_personalized_setup(setup, audit_recipe(), personalize=False)
    defense, unit, table = CASES[name]
    out = root / name
    if not (out / "setup").exists():
        shutil.copytree(setup, out / "setup")
    config = root / f"{name}.toml"
    config.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in table.items()) + "\n")
    started = time.perf_counter()
    res = CliRunner().invoke(main, ["-q", "dp-audit", "--out", str(out), "--defense", defense, "--config", str(config),
                                    "--n", str(N), "--unit", unit, "--seed", "0"])
    if res.exit_code != 0:
        raise SystemExit(f"{name}: {res.output}{res.exception!r}")
    r = json.loads((out / "dp_audit.json").read_text())
    return {"case": name, "claimed": r["claimed_epsilon"], "lower": round(r["empirical_epsilon_lower"], 3),
            "guesses": r["guesses"], "correct": r["correct"], "signal": r["signal"], "unit": r["unit"],
            "canaries": r["canaries"], "violated": r["claim_violated"],
            "per_signal": {s: round(v["empirical_epsilon_lower"], 3) for s, v in r["signals"].items()},
            "seconds": round(time.perf_counter() - started)}


if __name__ == "__main__":
    root = Path(sys.argv[1])
    for case in sys.argv[2:] or list(CASES):
        print(json.dumps(run_case(root, case)), flush=True)
