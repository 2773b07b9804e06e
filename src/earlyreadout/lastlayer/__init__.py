"""Last-layer retraining: a trained model's classifier input, and the heads DFR, AFR, SELF and the
readout-flagged variant fit on it (pure functions of embeddings; the methods in `methods/` drive them)."""
