"""Early readouts: heads, cross-fitting, scores, weight formulas and weighters, the Feature Sieve, probes."""
