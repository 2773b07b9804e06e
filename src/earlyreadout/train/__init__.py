"""The training recipe: the engine, run directories, and retraining the last layer of a finished run."""
