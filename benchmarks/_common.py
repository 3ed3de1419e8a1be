"""Shared pieces of the benchmarks: sandbox processes, results, and the command line."""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import math
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

REPO = Path(__file__).resolve().parent.parent
_SERVER = Path(__file__).with_name("_sandbox_server.py")


def cli_command() -> list[str]:
    """The installed ``exotel-async`` script beside this interpreter, else ``-m``."""
    script = Path(sys.executable).with_name("exotel-async")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "exotel_async.cli"]


#: Runs the CLI and reports its wall time and peak RSS. A fresh, small process on purpose:
#: Linux folds the RSS of the process a child was forked from into the child's
#: ``ru_maxrss``, so measuring from this (larger) benchmark process would overstate it.
MEASURE_WRAPPER = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)
elapsed = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"code": code, "elapsed": elapsed, "maxrss_kb": peak}))
"""


def median(values: Sequence[float]) -> float:
    """The median of a non-empty sequence."""
    return float(statistics.median(values))


@dataclass
class Figure:
    """One measured number: the median of ``samples``."""

    label: str
    value: float
    unit: str
    samples: list[float] = field(default_factory=list)


@dataclass
class Target:
    """A goal for one figure: ``value`` must be at least (or at most) ``limit``."""

    description: str
    value: float
    limit: float
    at_least: bool

    @property
    def met(self) -> bool:
        """Whether the measured value reaches the goal."""
        return self.value >= self.limit if self.at_least else self.value <= self.limit


@dataclass
class Result:
    """What one scenario measured."""

    scenario: str
    title: str
    #: Quick runs use tiny inputs: their figures prove the script works, not the targets.
    quick: bool = False
    figures: list[Figure] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Data behind the plots (``--plot``), beyond the figures: traces, sweeps, breakdowns.
    series: dict[str, Any] = field(default_factory=dict)

    def add(self, label: str, samples: Sequence[float], unit: str) -> float:
        """Record the median of ``samples`` under ``label`` and return it."""
        value = median(samples)
        self.figures.append(Figure(label, value, unit, [float(s) for s in samples]))
        return value

    def target(self, description: str, value: float, limit: float, *, at_least: bool) -> None:
        """Record a goal and how the measured value compares with it."""
        self.targets.append(Target(description, value, limit, at_least))

    def render(self) -> str:
        """The result as aligned text lines for a terminal."""
        lines = [f"== {self.scenario}: {self.title}"]
        width = max((len(f.label) for f in self.figures), default=0)
        for f in self.figures:
            runs = f" (median of {len(f.samples)})" if len(f.samples) > 1 else ""
            # Figures without a unit are counts (requests, pages in flight).
            value = f"{fmt(f.value, count=not f.unit)} {f.unit}".rstrip()
            lines.append(f"  {f.label:<{width}}  {value}{runs}")
        lines.extend(f"  target {self.judge(t)}" for t in self.targets)
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)

    def judge(self, t: Target) -> str:
        """``goal: value >= limit verdict``; quick runs are too small to judge."""
        sign = ">=" if t.at_least else "<="
        verdict = "not judged (quick)" if self.quick else ("met" if t.met else "MISSED")
        return f"{t.description}: {fmt(t.value)} {sign} {fmt(t.limit)}  {verdict}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data, with each target's verdict."""
        data = asdict(self)
        for entry, t in zip(data["targets"], self.targets, strict=True):
            entry["met"] = t.met
        return data


def fmt(value: float, *, count: bool = False) -> str:
    """Three significant figures (a whole number for a count), never scientific notation."""
    if not math.isfinite(value):
        return str(value)
    if value == 0 or (count and value == int(value)):
        return f"{int(value):,}"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(0, 2 - magnitude)
    return f"{value:,.{decimals}f}"


class SandboxProcess:
    """``benchmarks/_sandbox_server.py`` in a child process, so it never shares our CPU.

    ``stats()`` asks the server what it saw since the last call; leaving the ``with`` block
    closes its stdin, which makes it exit.
    """

    def __init__(
        self,
        *,
        records: int,
        campaign: str = "bench",
        latency: float = 0.0,
        rate_limit: tuple[int, float] | None = None,
        rate_semantics: dict[str, Any] | None = None,
        campaigns: int = 1,
        cache_pages: int = 1024,
        account: tuple[int, int, int] | None = None,
    ) -> None:
        """Remember the sandbox's settings; it starts on ``__enter__``.

        ``account`` is (campaigns, records, largest campaign) of a generated account served
        beside ``campaign``.
        """
        self.campaign = campaign
        self._argv = [
            sys.executable,
            str(_SERVER),
            f"--campaign={campaign}",
            f"--records={records}",
            f"--latency={latency}",
            f"--cache-pages={cache_pages}",
            f"--campaigns={campaigns}",
        ]
        if account is not None:
            size, total, largest = account
            self._argv += [
                f"--account={size}",
                f"--account-records={total}",
                f"--max-records={largest}",
                # Every page of the account, with room for retries and list pages.
                f"--log-size={total // 10 + 10_000}",
            ]
        if rate_limit is not None:
            self._argv += [f"--rate-limit={rate_limit[0]}", f"--rate-window={rate_limit[1]}"]
            semantics = rate_semantics or {}
            self._argv += [
                f"--rate-kind={semantics.get('window', 'sliding')}",
                f"--rate-reset={semantics.get('reset', 'epoch_ms')}",
                f"--rate-status={semantics.get('status', 429)}",
            ]
            if not semantics.get("retry_after", True):
                self._argv.append("--no-retry-after")
        self._process: subprocess.Popen[str] | None = None
        self.info: dict[str, str] = {}

    @property
    def base_url(self) -> str:
        """Where the sandbox listens."""
        return self.info["base_url"]

    @property
    def credentials(self) -> tuple[str, str, str]:
        """``(api_key, api_token, account_sid)`` the sandbox accepts."""
        return self.info["api_key"], self.info["api_token"], self.info["account_sid"]

    def __enter__(self) -> SandboxProcess:
        """Start the server and read its address."""
        self._process = subprocess.Popen(
            self._argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO
        )
        try:
            self.info = json.loads(_read_line(self._process.stdout))
        except BaseException:
            self._stop()
            raise
        return self

    def stats(self) -> dict[str, Any]:
        """The server's counters since the previous call (requests, by_status, ...)."""
        return self._command("stats")

    @property
    def env(self) -> dict[str, str]:
        """``EXOTEL_*`` variables pointing a client (or the CLI) at this sandbox."""
        api_key, api_token, account_sid = self.credentials
        return {
            "EXOTEL_BASE_URL": self.base_url,
            "EXOTEL_API_KEY": api_key,
            "EXOTEL_API_TOKEN": api_token,
            "EXOTEL_ACCOUNT_SID": account_sid,
        }

    def configure(self, *, faults: dict[str, Any], records: int) -> None:
        """Replace the server's fault knobs (all others off) and set the campaign's size."""
        self._command("set " + json.dumps({"faults": faults, "records": records}))

    def _command(self, line: str) -> dict[str, Any]:
        """Send one command line and read the server's JSON answer."""
        assert self._process is not None
        assert self._process.stdin is not None
        self._process.stdin.write(line + "\n")
        self._process.stdin.flush()
        data: dict[str, Any] = json.loads(_read_line(self._process.stdout))
        return data

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self._stop()

    def _stop(self) -> None:
        """Close stdin (the server's signal to stop), then reap it, killing it if stuck."""
        process, self._process = self._process, None
        if process is None:
            return
        _reap(process, close_stdin=True)


class CliSandbox:
    """The project's own ``python -m exotel_async.testing`` in a child process."""

    def __init__(self, *, records: int, campaign: str) -> None:
        """Remember the sandbox's size; it starts on ``__enter__``."""
        self.campaign = campaign
        self._argv = [
            sys.executable,
            "-m",
            "exotel_async.testing",
            "--port",
            "0",
            "--records",
            str(records),
            "--campaign",
            campaign,
        ]
        self._process: subprocess.Popen[str] | None = None
        self.env: dict[str, str] = {}

    def __enter__(self) -> CliSandbox:
        """Start the server and collect the ``EXOTEL_*`` variables from its banner."""
        self._process = subprocess.Popen(
            self._argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True, cwd=REPO
        )
        try:
            while "EXOTEL_ACCOUNT_SID" not in self.env:
                line = _read_line(self._process.stdout).strip()
                # The banner prints shell lines: ``export EXOTEL_X='value'``.
                name, equals, value = line.removeprefix("export ").partition("=")
                if equals and name.startswith("EXOTEL_"):
                    self.env[name] = shlex.split(value)[0] if value else value
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self._stop()

    def _stop(self) -> None:
        """SIGTERM is the sandbox's documented way to stop; reap it, killing it if stuck."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        _reap(process, close_stdin=False)


def _read_line(stream: IO[str] | None) -> str:
    """Read one line from a child's stdout; an empty read means the child died."""
    assert stream is not None
    line = stream.readline()
    if not line:
        raise RuntimeError("the sandbox process exited before printing its address")
    return line


def _reap(process: subprocess.Popen[str], *, close_stdin: bool) -> None:
    """Wait for a child to exit and close its pipes, so nothing leaks a ResourceWarning."""
    if close_stdin and process.stdin is not None:
        process.stdin.close()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()


def parse_args(
    description: str,
    argv: Sequence[str] | None,
    *,
    extra: Callable[[argparse.ArgumentParser], None],
) -> argparse.Namespace:
    """The options every scenario script takes: ``--quick``, ``--runs``, ``--json``, ``--plot``."""
    parser = argparse.ArgumentParser(description=description)
    add_common_options(parser)
    extra(parser)
    return parser.parse_args(argv)


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """The options shared by every scenario script and ``run_all.py``."""
    parser.add_argument("--quick", action="store_true", help="tiny inputs, one run each")
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (median)")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="DIR",
        help="also draw each scenario's chart as DIR/SCENARIO.svg (needs matplotlib)",
    )


def no_extra(parser: argparse.ArgumentParser) -> None:
    """For scenarios without options of their own."""


def script_main(
    description: str,
    run: Callable[..., Result],
    argv: Sequence[str] | None,
    *,
    extra: Callable[[argparse.ArgumentParser], None] = no_extra,
    options: Sequence[str] = (),
) -> int:
    """A scenario script's ``main``: parse, run once with ``options`` passed on, print."""
    args = parse_args(description, argv, extra=extra)
    chosen = {name: getattr(args, name) for name in options}
    results = [run(quick=args.quick, runs=args.runs, **chosen)]
    emit(results, args.json)
    plot(results, args.plot)
    return 0


def plot(results: Sequence[Result], directory: Path | None) -> None:
    """Draw the results' charts into ``directory`` if asked; matplotlib loads only then."""
    if directory is None:
        return
    from benchmarks._plot import write_plots

    for path in write_plots(results, directory):
        print(f"plot: {path}", flush=True)


def runs_for(quick: bool, runs: int | None, default: int) -> int:
    """Runs per figure: as asked, else one in quick mode, else the scenario's default."""
    if runs is not None:
        if runs < 1:
            raise ValueError(f"runs must be >= 1, got {runs}")
        return runs
    return 1 if quick else default


def emit(results: Sequence[Result], json_path: Path | None) -> None:
    """Print results and write them as JSON if asked."""
    print(describe_machine(), flush=True)
    for result in results:
        print(result.render(), flush=True)
    if json_path is not None:
        write_json(results, json_path)


def write_json(results: Sequence[Result], path: Path) -> None:
    """Write the machine and the results, every sample and verdict, as one JSON document."""
    payload = {"machine": machine(), "results": [r.as_dict() for r in results]}
    path.write_text(json.dumps(payload, indent=2) + "\n")


def machine() -> dict[str, str]:
    """What the figures were measured on: CPU, cores, Python, and the library's commit."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "aiohttp": importlib.metadata.version("aiohttp"),
        "commit": _commit(),
    }


def _commit() -> str:
    """The checked-out commit, marked ``+dirty`` when the library has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "status", "--porcelain", "--", "exotel_async"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    # Figures from a library being edited are not those of any commit: say so.
    return head + ("+dirty" if changes else "")


def describe_machine() -> str:
    """One line naming the machine, for the top of a report."""
    m = machine()
    return (
        f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, "
        f"aiohttp {m['aiohttp']}, exotel-async at {m['commit']}"
    )


def client_env() -> dict[str, str]:
    """The environment for child processes, without stray ``EXOTEL_*`` settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith("EXOTEL_")}
