"""Check a local copy of a dataset release before a long run: the loader reads it as training would, then the
rows per split and examples per group are compared with what the release holds, and every image file is
opened and decoded. Each problem is one line saying what is missing or different."""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from earlyreadout.data import DATASETS, load_splits
from earlyreadout.data.base import GroupedDataset
from earlyreadout.data.images import ImageFileDataset, read_rgb
from earlyreadout.data.releases import Release
from earlyreadout.errors import UserError
from earlyreadout.params import resolve

MAX_FILE_LINES = 20  # unreadable images listed one by one; the rest are counted in one line


@dataclass
class CheckResult:
    """The problems found (one line each) and what was checked, for the closing OK line."""

    dataset: str
    problems: list[str]
    rows: dict[str, int]
    images: int
    counts_checked: str

    def ok_line(self) -> str:
        rows = " / ".join(f"{n:,} {split}" for split, n in self.rows.items())
        images = f", {self.images:,} images decoded" if self.images else ""
        return f"{self.dataset}: OK ({rows} rows{images}; {self.counts_checked})"


def census(split: GroupedDataset) -> Counter[str]:
    """Examples per group, by the names the release uses ("class, attribute", or the class alone)."""
    if split.a is None:
        return Counter(split.class_names[y] for y in split.y.tolist())
    return Counter(f"{split.class_names[y]}, {split.attribute_names[a]}"
                   for y, a in zip(split.y.tolist(), split.a.tolist()))


def compare_counts(name: str, splits: dict[str, GroupedDataset], expected: Release) -> list[str]:
    """One line per split whose size, and per group whose size, differs from the release."""
    problems = []
    for split, n_expected in expected.rows.items():
        n = len(splits[split]) if split in splits else 0
        if n != n_expected:
            problems.append(f"{name}: split {split!r} has {n:,} rows; the release has {n_expected:,} "
                            f"({abs(n - n_expected):,} {'missing' if n < n_expected else 'extra'})")
    for split, groups in expected.groups.items():
        found = census(splits[split]) if split in splits else Counter()
        for group, n_expected in groups.items():
            if found[group] != n_expected:
                what = "is missing" if found[group] == 0 else f"has {found[group]:,} examples"
                problems.append(f"{name}: group {group!r} of split {split!r} {what}; the release has {n_expected:,}")
        for group in sorted(set(found) - set(groups)):
            problems.append(f"{name}: group {group!r} of split {split!r} ({found[group]:,} examples) is not in the "
                            "release; check the label and attribute columns")
    return problems


def check_classes(name: str, splits: dict[str, GroupedDataset]) -> list[str]:
    """Without published counts: every split has rows, and every class has training examples."""
    problems = [f"{name}: split {split!r} has no rows" for split, ds in splits.items() if len(ds) == 0]
    if "train" in splits and len(splits["train"]):
        present = set(splits["train"].y.tolist())
        problems += [f"{name}: class {c!r} has no training examples" for i, c in
                     enumerate(splits["train"].class_names) if i not in present]
    return problems


def check_images(name: str, splits: dict[str, GroupedDataset], workers: int | None = None) -> tuple[list[str], int]:
    """(one line per image file that is missing or cannot be decoded, number of files opened)."""
    paths = sorted({p for ds in splits.values() if isinstance(ds, ImageFileDataset) for p in ds.paths})

    def problem(path: Path) -> str | None:
        try:
            read_rgb(path, name)
        except UserError as e:
            return str(e)
        return None

    with ThreadPoolExecutor(workers or min(32, (os.cpu_count() or 1) * 2)) as pool:
        problems = [p for p in pool.map(problem, paths, chunksize=64) if p is not None]
    if len(problems) > MAX_FILE_LINES:
        more = (f"{name}: {len(problems) - MAX_FILE_LINES:,} more image files are missing or unreadable (only "
                f"the first {MAX_FILE_LINES} are listed)")
        problems = problems[:MAX_FILE_LINES] + [more]
    return problems, len(paths)


def check_dataset(name: str, root: str, expected: Release | None, options: dict[str, Any] | None = None,
                  workers: int | None = None) -> CheckResult:
    """Read dataset `name` under `root` as training would (no decoded-image cache) and list every problem:
    the loader's own error when the layout is broken, else counts that differ from `expected` (or, without
    it, empty splits and classes) and image files that are missing or cannot be decoded."""
    spec = DATASETS.get(name)
    given = {**(options or {}), "root": root}
    if "cache" in spec.options:
        given["cache"] = False
    values, problems = resolve(spec.options, given, f"dataset {name!r}")
    if problems:
        raise UserError("; ".join(problems))
    not_checked = "counts not checked: no published counts known for this dataset"
    if options and expected is not None:
        expected, not_checked = None, "counts not checked: options differ from the release's defaults"
    try:
        splits = load_splits(name, values)
    except UserError as e:
        return CheckResult(name, [str(e)], {}, 0, not_checked)
    problems = compare_counts(name, splits, expected) if expected else check_classes(name, splits)
    image_problems, n_images = check_images(name, splits, workers)
    counts = f"counts match the release ({expected.source})" if expected else not_checked
    return CheckResult(name, problems + image_problems, {k: len(v) for k, v in splits.items()}, n_images, counts)
