"""Training on mixed pairs of examples (mixup, LISA) on their base, `MixedTraining`."""
