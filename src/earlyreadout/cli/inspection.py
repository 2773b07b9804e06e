"""Commands that read finished runs: gradcam, report, diagnose."""

from __future__ import annotations

import argparse

from earlyreadout.cli.base import add_options, command, given_options


def _gradcam_args(p: argparse.ArgumentParser) -> None:
    from earlyreadout.explain.runs import GRADCAM_OPTIONS

    p.add_argument("--run", dest="run_dir", required=True, help="a finished run directory")
    p.add_argument("--vs", help="a second run on the same data, shown side by side (e.g. ERM vs sieve)")
    p.add_argument("--out", help="output folder (default: <run>/gradcam, or <run>/gradcam-vs with --vs)")
    add_options(p, GRADCAM_OPTIONS)


def cmd_gradcam(args: argparse.Namespace) -> int:
    from earlyreadout.explain.runs import GRADCAM_OPTIONS, explain_runs, write_explanation

    runs = [args.run_dir] + ([args.vs] if args.vs else [])
    explanation = explain_runs(runs, **given_options(args, GRADCAM_OPTIONS))
    out = args.out or f"{args.run_dir.rstrip('/')}/{'gradcam-vs' if args.vs else 'gradcam'}"
    for path in write_explanation(explanation, out):
        print(path)
    for note in explanation.notes:
        print(f"note: {note}")
    return 0


command("gradcam", "show what trained models look at: Grad-CAM per group (token attributions for text)")(
    _gradcam_args)(cmd_gradcam)


def _report_args(p: argparse.ArgumentParser) -> None:
    from earlyreadout.report.page import REPORT_OPTIONS

    p.add_argument("runs", nargs="+", help="run directories, or folders of runs (e.g. a compare --out)")
    p.add_argument("--out", default="report.html", help="the HTML file to write")
    add_options(p, REPORT_OPTIONS)


def cmd_report(args: argparse.Namespace) -> int:
    from earlyreadout.report.page import REPORT_OPTIONS, write_report

    path = write_report(args.runs, args.out, **given_options(args, REPORT_OPTIONS))
    print(f"report written to {path}")
    return 0


command("report", "one self-contained HTML page comparing runs: metrics, curves, diagnosis, Grad-CAM, configs")(
    _report_args)(cmd_report)


def _diagnose_args(p: argparse.ArgumentParser) -> None:
    from earlyreadout.explain.diagnose import DIAGNOSE_OPTIONS

    p.add_argument("--run", dest="run_dir", required=True, help="a finished run directory")
    p.add_argument("--out", help="output folder (default: the run directory)")
    add_options(p, DIAGNOSE_OPTIONS)


def cmd_diagnose(args: argparse.Namespace) -> int:
    from earlyreadout.explain.diagnose import DIAGNOSE_OPTIONS, diagnose

    diagnose(args.run_dir, args.out, **given_options(args, DIAGNOSE_OPTIONS))
    return 0


command("diagnose", "train early readouts on a run's frozen layers; score how well they flag minority groups")(
    _diagnose_args)(cmd_diagnose)
