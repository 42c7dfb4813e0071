"""make bench: every benchmark, figures printed as a table and written to bench/results/*.json.

Usage: python bench/run.py [relay] [latency] [pipeline] [memory] [timers] [cluster] [ha] [nodes] [history] [--repeats N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import django_setup

ALL = ["relay", "latency", "pipeline", "memory", "timers", "cluster", "ha", "nodes", "history"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("benchmarks", nargs="*", default=[], help=f"any of {', '.join(ALL)} (default: all)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="runs of each benchmark (default: its own, 3; the pipeline 5)")
    args = parser.parse_args()
    chosen = args.benchmarks or ALL
    unknown = sorted(set(chosen) - set(ALL))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(ALL)}")
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    django_setup()

    from rich.console import Console
    from rich.table import Table

    console = Console()
    started = time.monotonic()
    for name in chosen:
        module = __import__(f"bench.{name}_bench", fromlist=["run"])
        repeats = args.repeats or getattr(module, "REPEATS", 3)
        console.print(f"[bold]{name}[/bold] ({repeats} runs) ...")
        t0 = time.monotonic()
        figures = module.run(repeats=repeats)
        table = Table(title=f"{name}.json ({time.monotonic() - t0:.0f} s)")
        table.add_column("figure")
        table.add_column("value", justify="right")
        for key, value in figures.items():
            table.add_row(key, str(value))
        console.print(table)
    console.print(f"all benchmarks done in {time.monotonic() - started:.0f} s; results in bench/results/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
