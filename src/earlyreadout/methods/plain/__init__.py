"""Plain training: ERM."""
