"""Privacy wall, differentially private learning, FHE analytics, token-gated release, privacy budget."""
