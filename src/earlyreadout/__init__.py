"""earlyreadout: find and remove shortcut learning in deep networks with early readouts."""

__version__ = "0.1.0"
