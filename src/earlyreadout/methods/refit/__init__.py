"""Last-layer retraining of a trained network (DFR, AFR, SELF, readout-DFR, cRT and its variants)."""
