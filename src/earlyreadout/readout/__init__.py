"""Early readouts: heads, layer hooks, cross-fitting, scores and weights, the Feature Sieve, readout reweighting and probes."""
