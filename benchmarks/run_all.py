"""Run every benchmark scenario in turn and print the figures and targets.

``python benchmarks/run_all.py`` (or ``python -m benchmarks``) takes about eighteen minutes
on two cores, four of them the account export and ten syncing and following in ``sync``;
``--quick`` runs tiny inputs once each in a few seconds. Targets are reported, never
asserted: the exit status is 0 whatever the figures say.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for `python benchmarks/x.py`

from benchmarks._common import Result, add_common_options, describe_machine, plot, write_json

SCENARIOS = (
    "latency_hiding",
    "cpu_per_record",
    "rate_limit",
    "first_record",
    "scaling",
    "account_export",
    "sync",
)


def _runner(name: str, args: argparse.Namespace) -> Callable[[], Result]:
    """A scenario's ``run`` with the options that apply to it.

    Imported only when chosen: ``latency_hiding`` needs ``requests`` (the ``bench`` extra)
    and the others must still run without it.
    """
    module = importlib.import_module(f"benchmarks.{name}")
    options: dict[str, bool] = {}
    if name == "cpu_per_record":
        options["profile"] = args.profile
    if name == "scaling":
        options["full"] = args.full
    return functools.partial(module.run, quick=args.quick, runs=args.runs, **options)


def _parser() -> argparse.ArgumentParser:
    """Describe the command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_options(parser)
    parser.add_argument(
        "--only", action="append", choices=SCENARIOS, help="run just this scenario; repeatable"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the typed stream")
    parser.add_argument("--full", action="store_true", help="scaling: CSV at 1M, repeat 1M")
    return parser


def run_all(args: argparse.Namespace) -> list[Result]:
    """Run the chosen scenarios, printing each as it finishes."""
    results = []
    for name in args.only or SCENARIOS:
        started = time.perf_counter()
        result = _runner(name, args)()
        print(result.render(), flush=True)
        print(f"  ({time.perf_counter() - started:.1f} s)\n", flush=True)
        results.append(result)
    return results


def summary(results: Sequence[Result]) -> str:
    """One line per target: the scenario, the goal, the figure and the verdict."""
    lines = ["== targets"]
    for result in results:
        lines.extend(f"  {result.scenario}: {result.judge(t)}" for t in result.targets)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite from the command line."""
    args = _parser().parse_args(argv)
    started = time.perf_counter()
    print(describe_machine(), flush=True)
    results = run_all(args)
    if args.json is not None:
        write_json(results, args.json)
    plot(results, args.plot)
    print(summary(results))
    print(f"total {time.perf_counter() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
