"""The README's (and the usage guide's) Python examples marked `<!-- tested -->` run as written, each in a fresh
interpreter in a folder holding what the README's practitioner has (metadata.csv, images, my_models.py, net.pt),
and the README's commands name real things."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from earlyreadout.cli import COMMANDS
from earlyreadout.compare import CEILING, FAMILIES
from earlyreadout.data import DATASETS
from earlyreadout.methods import METHODS
from practitioner import image_folder, train_own_model

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
DOCS = {name: (ROOT / name).read_text() for name in ("README.md", "docs/usage.md", "docs/own_model.md")}
EXAMPLES = [(name, code) for name, text in DOCS.items()
            for code in re.findall(r"<!-- tested -->\n```python\n(.*?)```", text, re.DOTALL)]


@pytest.fixture(scope="module")
def practitioner_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("practitioner")
    image_folder(root)
    train_own_model(root)
    return root


def test_readme_has_examples_and_each_asserts_what_it_shows():
    assert len([n for n, _ in EXAMPLES if n == "README.md"]) >= 2
    assert all(re.search(r"^\s*assert ", code, re.MULTILINE) for _, code in EXAMPLES)


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_example_runs(index, practitioner_folder):
    name, code = EXAMPLES[index]
    done = subprocess.run([sys.executable, "-c", code], cwd=practitioner_folder, capture_output=True, text=True, check=False,
                          timeout=600)
    assert done.returncode == 0, f"{name} example {index}:\n{done.stderr[-3000:]}"


def test_readme_commands_use_known_commands_methods_and_datasets():
    commands = set(re.findall(r"(?:\.venv/bin/|\n|`|-m )earlyreadout (\w+)", README))
    assert commands >= {"train", "compare", "diagnose", "distill", "search", "report", "gradcam", "import", "retrain"}
    assert commands <= set(COMMANDS), commands - set(COMMANDS)
    for methods in re.findall(r"--methods ([\w,+-]+)", README):
        for m in methods.split(","):
            assert all(part in METHODS for part in m.split("+")) if "+" in m else (
                m in METHODS or m == CEILING or m in FAMILIES), m
    for data in re.findall(r"--data ([\w-]+)", README):
        assert data in DATASETS, data


def test_readme_stays_short():
    assert len(README.splitlines()) <= 250
