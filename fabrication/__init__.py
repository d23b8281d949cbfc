"""Rule-guided synthetic data fabrication with MiniZinc, profiler and realism verification."""
