"""Methods without group labels: error up-weighting (JTT, LfF) and inferred groups (SPARE, EIIL)."""
