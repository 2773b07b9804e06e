"""Class and group re-balancing: re-weighting, re-sampling and re-balanced losses (their base, `Balanced`)."""
