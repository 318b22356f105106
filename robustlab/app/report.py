"""``robustlab-report DIR``: summarise a sweep folder into CSV, PNG plots and Markdown."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from robustlab.errors import RobustlabError
from robustlab.report.sweep import write_report

PROG = "robustlab-report"


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"eps must be positive, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of ``robustlab-report``."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Summarise a Hydra multirun folder into results.csv, PNG plots and summary.md.",
    )
    parser.add_argument("sweep_dir", help="multirun output folder (holds multirun.yaml and jobs)")
    parser.add_argument("--out", default=None, help="report folder (default: SWEEP_DIR/report)")
    parser.add_argument(
        "--attack",
        default=None,
        help="attack that ranks configs (default: worst_case when present, else pgd)",
    )
    parser.add_argument(
        "--eps", type=_positive_float, default=None, help="eps of the trade-off plot"
    )
    parser.add_argument(
        "--compare",
        default=None,
        metavar="GRID_DIR",
        help="a grid sweep of the same study (e.g. experiment=beta_sweep): draw its frontier "
        "beside this sweep's Pareto front, at the same number of jobs",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Write the report and print where it is; exit 2 on a missing or empty sweep folder."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        paths = write_report(
            args.sweep_dir,
            args.out,
            main_attack=args.attack,
            frontier_eps=args.eps,
            grid_dir=args.compare,
        )
    except RobustlabError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{PROG}: error: cannot write the report: {exc}", file=sys.stderr)
        return 1
    print(f"summary: {paths.summary}")
    print(f"table:   {paths.csv}")
    for plot in paths.plots:
        print(f"plot:    {plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
