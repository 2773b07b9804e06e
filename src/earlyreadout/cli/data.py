"""Commands about dataset copies on disk: data check."""

from __future__ import annotations

import argparse

from earlyreadout.cli.base import command
from earlyreadout.errors import UserError


def _data_args(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(dest="action", required=True, metavar="check")
    check = actions.add_parser("check", help="compare a local copy with the published release: rows per split, "
                                             "examples per group, image files present and decodable")
    check.add_argument("--data", required=True, help="dataset name (waterbirds, celeba, multinli, civilcomments, "
                                                     "bar, nico, csv)")
    check.add_argument("--data-root", required=True, help="folder holding the dataset release, as for train")
    check.add_argument("--workers", type=int, help="threads decoding images (default: two per CPU core)")
    check.add_argument("overrides", nargs="*", metavar="data.key=value",
                       help="dataset options, e.g. data.file=meta.csv for csv (counts are then not compared)")


def cmd_data(args: argparse.Namespace) -> int:
    from earlyreadout.config import apply_overrides
    from earlyreadout.data.check import check_dataset
    from earlyreadout.data.releases import RELEASES

    options = apply_overrides({}, args.overrides)
    unknown = sorted(set(options) - {"data"})
    if unknown:
        raise UserError(f"data check takes only data.* options; got {', '.join(unknown)} (e.g. data.file=meta.csv)")
    result = check_dataset(args.data, args.data_root, RELEASES.get(args.data), options.get("data", {}),
                           args.workers)
    for line in result.problems:
        print(line)
    if result.problems:
        raise UserError(f"{len(result.problems)} problem(s) in the {args.data} copy under {args.data_root}: "
                        "restore or download again what the lines above name")
    print(result.ok_line())
    return 0


command("data", "check a dataset copy on disk against its published release (data check --data NAME ...)")(
    _data_args)(cmd_data)
