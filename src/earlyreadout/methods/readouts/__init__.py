"""Training with early readouts: readout reweighting and the Feature Sieve."""
