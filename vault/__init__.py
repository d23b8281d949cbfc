"""The data vault: T-P-O-L-E Smart Patient Records, encrypted at rest, released only against tokens."""
