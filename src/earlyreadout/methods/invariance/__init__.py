"""Invariance penalties between groups (IRM, MMD, CORAL) on their base, `FeatureMatching`."""
