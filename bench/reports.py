"""Where a benchmark's report goes: printed, and appended to bench/RESULTS.md unless --no-record.

The report goes at the end of the file, i.e. into its history, below the table of current figures
(update that table by hand when a run changes a figure).
"""
from __future__ import annotations

import argparse
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def add_record_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to bench/RESULTS.md")


def publish(report: str, args: argparse.Namespace) -> None:
    """Print the report and, unless --no-record, append it to bench/RESULTS.md as a section of its own."""
    print()
    print(report)
    if not args.no_record:
        with RESULTS.open("a") as results:
            results.write("\n" + report.rstrip("\n") + "\n")
