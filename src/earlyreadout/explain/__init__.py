"""Analysis of trained runs: Grad-CAM and token attributions, their figures, and the early-readout diagnosis."""
