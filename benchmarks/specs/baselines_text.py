"""The baselines study (`baselines.py`: every teacher-free method at full size, its defaults, seeds 1-3,
selected by worst-group and, for label-free methods, worst-class accuracy) on spurious-text, kept apart so the
image benchmarks' table stands while the text runs are made; its runs share the image study's log.
"""

from dataclasses import replace

from benchmarks.specs.baselines import STUDY as IMAGES

STUDY = replace(IMAGES, name="baselines_text", about=__doc__, data=("spurious-text",))
