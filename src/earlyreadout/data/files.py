"""Reading benchmark releases from the user's disk: locating the dataset folder, tables with checked columns.

Every failure is a UserError naming the path or column and what was found instead, so a user with a
slightly different download layout sees at once what to change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import torch

from earlyreadout.errors import UserError, did_you_mean
from earlyreadout.params import Param

ROOT_OPTION = Param(None, "folder holding the dataset (the --data-root flag)", nullable=True, kind=str, path=True)
# For releases without a validation split: which split it is carved from, and how much (see `split_off`).
VAL_CARVE_OPTIONS: dict[str, Param] = {
    "val_from": Param("train", "split the validation set is carved from", choices=("train", "test")),
    "val_fraction": Param(0.2, "fraction of that split used for validation", low=0.0, high=1.0,
                          open_low=True, open_high=True),
}


def listing(path: Path, n: int = 12) -> str:
    """A short listing of a folder's entries, for error messages."""
    try:
        names = sorted(p.name for p in path.iterdir())
    except OSError:
        return "(unreadable)"
    if not names:
        return "(empty)"
    more = f", ... ({len(names) - n} more)" if len(names) > n else ""
    return ", ".join(names[:n]) + more


def find_dataset_dir(root: str | None, dataset: str, marker: str, layouts: Sequence[str]) -> Path:
    """The folder under `root` that holds `marker` (a file or folder name): `root` itself or `root/<layout>`.

    `layouts` are the relative locations the public releases use (e.g. `waterbirds_v1.0`).
    """
    if root is None:
        raise UserError(f"dataset {dataset!r} reads a release from your disk: pass --data-root PATH "
                        f"(or data.root=PATH) pointing at the folder holding {marker!r}")
    base = Path(root).expanduser()
    if not base.is_dir():
        raise UserError(f"{dataset}: data root {str(base)!r} does not exist or is not a folder")
    candidates = [base] + [base / layout for layout in layouts]
    for folder in candidates:
        if (folder / marker).exists():
            return folder
    tried = ", ".join(str(c) for c in candidates)
    raise UserError(f"{dataset}: no {marker!r} found under data root {str(base)!r} (looked in {tried}); "
                    f"the root holds: {listing(base)}")


def require_file(path: Path, dataset: str, what: str = "file") -> Path:
    """`path` if it exists, else a UserError naming it and listing its folder."""
    if not path.exists():
        parent = path.parent
        found = listing(parent) if parent.is_dir() else f"(folder {str(parent)!r} does not exist)"
        raise UserError(f"{dataset}: missing {what} {str(path)!r}; {parent.name or parent} holds: {found}")
    return path


def check_columns(frame: pd.DataFrame, columns: Sequence[str] | Mapping[str, str], path: Path, dataset: str) -> None:
    """Raise a UserError naming every missing column and the columns that are present; where `columns` maps
    each column to the option that names it (e.g. `data.label_column`), the error says which option to set."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        hints = "".join(did_you_mean(c, [str(x) for x in frame.columns]) for c in missing[:1])
        present = ", ".join(str(c) for c in frame.columns[:50])
        more = f", ... ({len(frame.columns) - 50} more)" if len(frame.columns) > 50 else ""
        options = [columns[c] for c in missing] if isinstance(columns, Mapping) else []
        named = f" ({', '.join(options)})" if options else ""
        fix = f"; set {' and '.join(f'{o}=COLUMN' for o in options)} to one of them" if options else ""
        raise UserError(f"{dataset}: {str(path)!r} has no column {', '.join(map(repr, missing))}{named}{hints}; "
                        f"columns present: {present}{more}{fix}")


def read_table(path: Path, dataset: str, columns: Sequence[str] | Mapping[str, str] = (),
               index_col: int | None = None, **kwargs: object) -> pd.DataFrame:
    """A CSV as a DataFrame with `columns` checked present (pandas' own parser, no pickles); `columns` may map
    each column to the option naming it, which a missing column's error then names."""
    require_file(path, dataset)
    try:
        frame = pd.read_csv(path, index_col=index_col, **kwargs)  # type: ignore[call-overload]
    except OSError as e:
        raise UserError(f"{dataset}: cannot read {str(path)!r} ({e.strerror}); point the data options at a "
                        "readable CSV file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise UserError(f"{dataset}: cannot read {str(path)!r} as CSV ({str(e).splitlines()[0]}); check that it is a "
                        "comma-separated table with a header line") from None
    check_columns(frame, columns, path, dataset)
    if frame.empty:
        raise UserError(f"{dataset}: {str(path)!r} has no rows (only a header); point the data options at the "
                        "dataset's full table")
    return frame


def split_codes(values: pd.Series, codes: dict[str, object], path: Path, column: str, dataset: str) -> pd.Series:
    """Map a split column's raw codes to 'train' / 'val' / 'test'; unknown codes are an error."""
    if not isinstance(codes, dict) or set(codes) != {"train", "val", "test"}:
        raise UserError(f"{dataset}: split codes must map train, val and test to the values of column "
                        f"{column!r}, e.g. {{train: 0, val: 1, test: 2}}; got {codes!r}")
    raw_to_name = {str(code): name for name, code in codes.items()}
    text = values.astype(str)
    unknown = sorted(set(text) - set(raw_to_name))
    if not unknown:
        return text.map(raw_to_name)
    names = text.str.strip().str.lower()
    if set(names) <= {"train", "val", "test"}:  # the split written out by name, in any case
        return names
    found = sorted(set(text))
    raise UserError(f"{dataset}: column {column!r} of {str(path)!r} holds split values "
                    f"{', '.join(map(repr, found[:8]))}{' ...' if len(found) > 8 else ''}; expected the codes "
                    f"{', '.join(f'{k}={v!r}' for k, v in codes.items())} or the names train/val/test (any case); "
                    "set the split codes to match")


def split_off(n: int, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept, held-out) indices: a seeded random `fraction` of range(n) held out."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cut = round(n * fraction)
    return perm[cut:].sort().values, perm[:cut].sort().values
