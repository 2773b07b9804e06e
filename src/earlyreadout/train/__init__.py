"""The training recipe: engine, run directories, checkpoints and inference."""
