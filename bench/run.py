"""make bench: every benchmark, figures printed as a table and written to bench/results/*.json.

Usage: python bench/run.py [relay] [latency] [pipeline] [memory] [timers] [worker_cpu] [cluster] [ha] [nodes]
                           [history] [statements] [--repeats N] [--reference COMMIT]

``pipeline --reference 4c66d6f`` runs the pipeline of this checkout and of that commit in turns
(--repeats pairs, 3 unless given) and adds their ratio to pipeline.json (docs/benchmarks.md).
SIGTERM, SIGHUP and Ctrl-C stop every process a benchmark started before it exits.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import django_setup, stop_on_signals

ALL = ["relay", "latency", "pipeline", "memory", "timers", "worker_cpu", "cluster", "ha", "nodes", "history",
       "statements"]
TAKES_REFERENCE = {"pipeline"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("benchmarks", nargs="*", default=[], help=f"any of {', '.join(ALL)} (default: all)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="runs of each benchmark (default: its own, 3; the pipeline 5; 3 pairs with --reference)")
    parser.add_argument("--reference", metavar="COMMIT", default=None,
                        help="the pipeline of this commit too (its own worktree, database and vhost), "
                             "in turns with the current checkout; pipeline.json gets the ratio")
    args = parser.parse_args()
    chosen = args.benchmarks or ALL
    unknown = sorted(set(chosen) - set(ALL))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(ALL)}")
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.reference and not TAKES_REFERENCE & set(chosen):
        parser.error(f"--reference is for {', '.join(sorted(TAKES_REFERENCE))}")
    stop_on_signals()
    django_setup()

    from rich.console import Console
    from rich.table import Table

    console = Console()
    started = time.monotonic()
    for name in chosen:
        module = __import__(f"bench.{name}_bench", fromlist=["run"])
        compared = args.reference if name in TAKES_REFERENCE else None
        if compared:
            repeats = args.repeats or module.PAIRS
            console.print(f"[bold]{name}[/bold] ({repeats} pairs: this checkout, then {compared}, in turns) ...")
        else:
            repeats = args.repeats or getattr(module, "REPEATS", 3)
            console.print(f"[bold]{name}[/bold] ({repeats} runs) ...")
        t0 = time.monotonic()
        figures = module.run(repeats=repeats, reference=compared) if compared else module.run(repeats=repeats)
        table = Table(title=f"{name}.json ({time.monotonic() - t0:.0f} s)")
        table.add_column("figure")
        table.add_column("value", justify="right")
        for key, value in figures.items():
            table.add_row(key, str(value))
        console.print(table)
    console.print(f"all benchmarks done in {time.monotonic() - started:.0f} s; results in bench/results/")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (bench.common.stop_on_signals)
        reason = str(exc) or "Ctrl-C"
        print(f"\ninterrupted ({reason}): every process the benchmarks started was stopped", file=sys.stderr)
        sys.exit(130)
