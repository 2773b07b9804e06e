"""One experiment model for `compare`, `search` and the benchmark studies: a job (one run), its log, a study
(arms x datasets x selection rules x seeds) and the plan that turns a study into jobs and choices."""
