"""The one-run DP audit (Steinke, Nasr, Jagielski, NeurIPS 2023): estimator, canaries, scoring, training."""
