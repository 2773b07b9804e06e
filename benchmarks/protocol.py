"""Where benchmarks/ keeps its results, and the one shape of every result file.

The protocol every full-size claim follows is the package's experiment model (`earlyreadout.experiments`):
a job is one training run at the dataset's full default size (or the last-layer refit of another job's
run), its checkpoint selected on validation; searches choose on validation only and a winner is re-trained
on fresh seeds; claims are mean ± std over those seeds. Every result file has one shape (`write_result`):
the stamp of the code that made it (commit, dirty flag, library versions), the command that makes it, the
spec, and the results.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import earlyreadout
from earlyreadout.train.runs import versions

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def code_stamp() -> dict[str, Any]:
    """The commit of the checkout whose earlyreadout is imported (`dirty`: with uncommitted changes to its
    code or benchmarks), library versions and the time."""
    def git(folder: Path, *args: str) -> str:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    top = git(Path(earlyreadout.__file__).resolve().parent, "rev-parse", "--show-toplevel")
    commit = git(Path(top), "rev-parse", "HEAD") if top else ""
    paths = ("src", "benchmarks", ":!benchmarks/results")
    changed = git(Path(top), "status", "--porcelain", "--", *paths) if top else ""
    return {"commit": commit or "unknown", "dirty": bool(changed), "versions": versions(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def command_line() -> str:
    """The command that made this process's result, as run from the repository root (`python -m benchmarks.NAME`
    for a script of this package)."""
    script = Path(sys.argv[0]).resolve()
    shown = "-m " + ".".join(script.relative_to(ROOT).with_suffix("").parts) if script.is_relative_to(ROOT) \
        else str(script)
    return " ".join(["python", shown, *sys.argv[1:]])


def write_result(path: Path, study: str, spec: dict[str, Any], results: dict[str, Any],
                 command: str | None = None) -> dict[str, Any]:
    """Write one result file in the shape every result has (`command`: what makes it; default this process's
    command line); return what was written."""
    document = {"study": study, "command": command or command_line(), "made_by": code_stamp(), "spec": spec,
                "results": results}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return document
