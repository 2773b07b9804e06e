"""The README's Python examples marked `<!-- tested -->` run as written, and its commands name real things."""

import re
from pathlib import Path

import pytest

from earlyreadout.cli import COMMANDS
from earlyreadout.compare import CEILING, FAMILIES
from earlyreadout.data import DATASETS
from earlyreadout.methods import METHODS

README = (Path(__file__).parent.parent / "README.md").read_text()
EXAMPLES = re.findall(r"<!-- tested -->\n```python\n(.*?)```", README, re.DOTALL)


def test_readme_has_examples_and_each_asserts_what_it_shows():
    assert len(EXAMPLES) >= 2
    assert all(re.search(r"^\s*assert ", example, re.MULTILINE) for example in EXAMPLES)


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_readme_example_runs(index):
    exec(compile(EXAMPLES[index], f"README.md example {index}", "exec"), {})  # noqa: S102 (our own docs)


def test_readme_commands_use_known_commands_methods_and_datasets():
    commands = set(re.findall(r"(?:\.venv/bin/|\n|`|-m )earlyreadout (\w+)", README))
    assert commands >= {"train", "compare", "diagnose", "distill", "search", "report", "gradcam"}
    assert commands <= set(COMMANDS), commands - set(COMMANDS)
    for methods in re.findall(r"--methods ([\w,+-]+)", README):
        for m in methods.split(","):
            assert all(part in METHODS for part in m.split("+")) if "+" in m else (
                m in METHODS or m == CEILING or m in FAMILIES), m
    for data in re.findall(r"--data ([\w-]+)", README):
        assert data in DATASETS, data
