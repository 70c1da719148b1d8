"""Models the project builds itself (tiny causal LMs for memorization experiments)."""
