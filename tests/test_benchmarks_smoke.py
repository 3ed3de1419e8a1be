"""The benchmarks still run: ``benchmarks/run_all.py --quick`` produces every figure.

Only that figures come out is checked, never how good they are: timing targets belong in
docs/performance.md, not in a test that a busy CI machine could fail.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = (
    "latency_hiding",
    "cpu_per_record",
    "rate_limit",
    "first_record",
    "scaling",
    "account_export",
    "sync",
)
#: The product page's baseline uses ``requests``, which only the ``bench`` extra installs.
HAVE_REQUESTS = importlib.util.find_spec("requests") is not None
RUNNABLE = SCENARIOS if HAVE_REQUESTS else tuple(s for s in SCENARIOS if s != "latency_hiding")
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
PLOTTED = ("latency_hiding", "cpu_per_record", "rate_limit", "scaling")


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a benchmark command from the repository root as a user would."""
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the quick run writes its JSON and, with matplotlib, its plots."""
    return tmp_path_factory.mktemp("bench")


@pytest.fixture(scope="module")
def quick_results(bench_dir: Path) -> dict[str, dict[str, Any]]:
    """Run the suite once in quick mode and load the JSON it writes."""
    out = bench_dir / "results.json"
    only = [] if RUNNABLE == SCENARIOS else [f"--only={name}" for name in RUNNABLE]
    plot = [f"--plot={bench_dir / 'plots'}"] if HAVE_MATPLOTLIB else []
    completed = _run(["benchmarks/run_all.py", "--quick", "--json", str(out), *only, *plot], 300)
    assert completed.returncode == 0, completed.stderr
    assert "== targets" in completed.stdout
    document = json.loads(out.read_text())
    assert document["machine"]["python"]
    return {entry["scenario"]: entry for entry in document["results"]}


def test_every_scenario_ran(quick_results: dict[str, dict[str, Any]]) -> None:
    """run_all runs every scenario it can, in quick mode."""
    assert sorted(quick_results) == sorted(RUNNABLE)
    assert all(entry["quick"] for entry in quick_results.values())


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_produces_figures(quick_results: dict[str, dict[str, Any]], scenario: str) -> None:
    """Each scenario reports finite, non-negative figures and at least one target."""
    if scenario not in RUNNABLE:
        pytest.skip("needs requests: pip install -e '.[bench]'")
    entry = quick_results[scenario]
    assert entry["figures"], f"{scenario} reported no figures"
    for figure in entry["figures"]:
        assert figure["samples"], figure["label"]
        for value in (figure["value"], *figure["samples"]):
            assert math.isfinite(value), figure["label"]
            assert value >= 0, figure["label"]
    assert entry["targets"], f"{scenario} states no target"
    for target in entry["targets"]:
        assert isinstance(target["met"], bool)
        assert math.isfinite(target["value"])


@pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="needs matplotlib: pip install -e '.[bench]'")
@pytest.mark.parametrize("scenario", PLOTTED)
def test_plot_is_an_svg_per_scenario(
    quick_results: dict[str, dict[str, Any]], bench_dir: Path, scenario: str
) -> None:
    """``--plot DIR`` writes DIR/SCENARIO.svg, a well-formed SVG document, for each chart."""
    if scenario not in quick_results:
        pytest.skip("needs requests: pip install -e '.[bench]'")
    root = ET.parse(bench_dir / "plots" / f"{scenario}.svg").getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert quick_results[scenario]["series"], "the JSON keeps the data behind the plot"


def test_scenario_script_runs_alone(tmp_path: Path) -> None:
    """A scenario also runs as its own script and writes the JSON it is asked for."""
    out = tmp_path / "first_record.json"
    completed = _run(["benchmarks/first_record.py", "--quick", "--json", str(out)], 120)
    assert completed.returncode == 0, completed.stderr
    (entry,) = json.loads(out.read_text())["results"]
    assert entry["scenario"] == "first_record"
    assert "stream start to first record" in completed.stdout


def test_scaling_repeats_an_export_over_its_finished_output(tmp_path: Path) -> None:
    """``scaling.py --runs 2`` exports each size twice where the first run's export finished."""
    out = tmp_path / "scaling.json"
    completed = _run(["benchmarks/scaling.py", "--quick", "--runs", "2", "--json", str(out)], 120)
    assert completed.returncode == 0, completed.stderr
    (entry,) = json.loads(out.read_text())["results"]
    walls = [f for f in entry["figures"] if f["label"].endswith(": wall")]
    assert walls
    assert all(len(f["samples"]) == 2 for f in walls)
