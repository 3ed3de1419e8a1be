"""Every Python example in the README and docs runs, against the sandbox."""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import exotel_async
from exotel_async import ExotelClient
from exotel_async.testing import Faults, Sandbox

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
CAMPAIGN = "491dd6c97d64475ba0ce346a18530ce5"
PYTEST_EXAMPLE = re.compile(r"^(async )?def test_", re.MULTILINE)

pytest_plugins = ["pytester"]


def blocks(*, pytest_examples: bool = False) -> list[Any]:
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            code = match.group(1)
            if code.lstrip().startswith("--8<--"):
                continue  # an included file under docs/examples, tested below
            if bool(PYTEST_EXAMPLE.search(code)) != pytest_examples:
                continue
            line = text.count("\n", 0, match.start()) + 2
            found.append(pytest.param(code, id=f"{page.relative_to(ROOT)}:{line}"))
    return found


@pytest.fixture
async def sandbox(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Sandbox]:
    """A sandbox holding the campaigns the docs name, and EXOTEL_* pointing at it."""
    async with Sandbox(campaigns={CAMPAIGN: 120, "demo": 120}) as sb:
        monkeypatch.setenv("EXOTEL_API_KEY", sb.api_key)
        monkeypatch.setenv("EXOTEL_API_TOKEN", sb.api_token)
        monkeypatch.setenv("EXOTEL_ACCOUNT_SID", sb.account_sid)
        monkeypatch.setenv("EXOTEL_BASE_URL", sb.base_url)
        monkeypatch.delenv("EXOTEL_REGION", raising=False)
        yield sb


@pytest.mark.parametrize("code", blocks())
async def test_docs_example_runs(
    code: str, sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The example runs as written, with ``client`` and ``campaign_id`` in scope."""
    monkeypatch.chdir(tmp_path)
    async with ExotelClient.from_env() as client:
        namespace: dict[str, Any] = {
            "client": client,
            "campaign_id": "demo",
            "done": lambda sms: True,
            # Snippets lean on the names the pages import once at their top.
            "ExotelClient": ExotelClient,
            "__name__": "docs_example",
        }
        if "asyncio.run(" in code:
            # The example runs its own event loop: give it a thread, and keep ours serving.
            await asyncio.to_thread(exec, compile(code, "<docs>", "exec"), namespace)
        else:
            flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
            result = eval(compile(code, "<docs>", "exec", flags=flags), namespace)
            if inspect.isawaitable(result):
                await result


@pytest.mark.parametrize("code", blocks(pytest_examples=True))
def test_docs_pytest_example_passes(code: str, pytester: pytest.Pytester) -> None:
    """A test written for users' suites passes there, configured as the docs say, unwarned."""
    testing = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    pytester.makepyprojecttoml(testing.split("```toml\n", 1)[1].split("```", 1)[0])
    pytester.makepyfile(test_user=code)
    result = pytester.runpytest("-q", "-p", "no:cacheprovider", "-W", "error")
    result.assert_outcomes(passed=len(PYTEST_EXAMPLE.findall(code)))


def load_example(name: str) -> Any:
    """Import a file under docs/examples as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "docs" / "examples" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_fastapi_example_streams_ndjson(sandbox: Sandbox) -> None:
    """The FastAPI endpoint answers NDJSON, one record per line, for the whole campaign."""
    import httpx

    example = load_example("fastapi_ndjson")
    async with example.app.router.lifespan_context(example.app):
        transport = httpx.ASGITransport(app=example.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            response = await http.get(f"/campaigns/{CAMPAIGN}/sms.ndjson")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["sid"] for line in lines] == [r["sid"] for r in sandbox.records(CAMPAIGN)]


@pytest.mark.parametrize(("campaign", "status"), [("missing", 404), ("a b", 400)])
async def test_fastapi_example_maps_bad_campaigns(
    sandbox: Sandbox, campaign: str, status: int
) -> None:
    """Unknown campaigns are a 404 and malformed ids a 400, before any body is sent."""
    import httpx

    example = load_example("fastapi_ndjson")
    async with example.app.router.lifespan_context(example.app):
        transport = httpx.ASGITransport(app=example.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            response = await http.get(f"/campaigns/{campaign}/sms.ndjson")
    assert response.status_code == status


async def test_scheduled_export_example_resumes_through_an_outage(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job survives an outage longer than the client's retries, each record once."""
    example = load_example("scheduled_export")
    out = tmp_path / "campaign.jsonl"
    served = 0
    pauses = 0

    def outage_after_two_pages(*args: Any) -> None:
        nonlocal served
        served += 1
        if served == 2:
            sandbox.faults = Faults(p_503=1.0)

    async def pause_then_outage_ends(seconds: float) -> None:
        # Every request fails until the job has paused between attempts: the outage
        # outlasts the client's retries and ends on the job's own clock, not on a page.
        nonlocal pauses
        pauses += 1
        sandbox.faults = Faults()

    # Retries of the client itself are real-time: keep them to zero here.
    monkeypatch.setattr(example, "ExotelClient", _no_retries(example.ExotelClient))
    monkeypatch.setattr(example, "asyncio", SimpleNamespace(sleep=pause_then_outage_ends))
    original_run_export = example.run_export

    async def run_export_with_outage(client: ExotelClient, request: Any) -> Any:
        return await original_run_export(client, request, on_page=outage_after_two_pages)

    monkeypatch.setattr(example, "run_export", run_export_with_outage)
    progress = await example.export_campaign(CAMPAIGN, out, pause=60.0)
    assert progress.completed
    assert pauses == 1
    sids = [json.loads(line)["sid"] for line in out.read_text().splitlines()]
    assert sids == [r["sid"] for r in sandbox.records(CAMPAIGN)]


async def test_scheduled_export_example_runs_again_after_a_complete_run(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """The job's next scheduled run, after a complete one, returns without a request."""
    example = load_example("scheduled_export")
    out = tmp_path / "campaign.jsonl"
    await example.export_campaign(CAMPAIGN, out)
    requests = sandbox.stats.requests
    progress = await example.export_campaign(CAMPAIGN, out)
    assert progress.already_complete
    assert sandbox.stats.requests == requests


def _no_retries(cls: type[ExotelClient]) -> Any:
    class NoRetries(cls):  # type: ignore[valid-type,misc]
        @classmethod
        def from_env(cls, **overrides: object) -> ExotelClient:
            return ExotelClient.from_env(max_retries=0, **overrides)

    return NoRetries


async def test_dataframe_example_loads_an_export(sandbox: Sandbox, tmp_path: Path) -> None:
    """The pandas loader gives one row per record, aware times and text phone numbers."""
    pytest.importorskip("pandas")
    from exotel_async.export import ExportRequest, run_export

    out = tmp_path / "campaign.jsonl"
    async with ExotelClient.from_env() as client:
        await run_export(client, ExportRequest(CAMPAIGN, out))
    example = load_example("load_dataframe")
    frame = example.load_jsonl(out)
    assert len(frame) == 120
    assert str(frame["schedule_time"].dt.tz) == "UTC"
    assert frame["number"].str.startswith("+91").all()
    rates = example.delivery_by_day(frame)
    assert ((rates >= 0) & (rates <= 1)).all()


def test_every_public_name_has_a_docstring() -> None:
    """Each public name, and each public method of a public class, is documented."""
    missing = []
    for name in exotel_async.__all__:
        obj = getattr(exotel_async, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if not inspect.getdoc(obj):
            missing.append(name)
        if inspect.isclass(obj) and obj.__module__.startswith("exotel_async"):
            for attr, member in vars(obj).items():
                if attr.startswith("_") or not callable(member):
                    continue
                if not inspect.getdoc(member):
                    missing.append(f"{name}.{attr}")
    assert missing == []


def test_docs_site_builds_from_outside_the_repository(tmp_path: Path) -> None:
    """``mkdocs build -f .../mkdocs.yml`` works from any directory (snippets included)."""
    pytest.importorskip("mkdocs")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-q"]
    command += ["-f", str(ROOT / "mkdocs.yml"), "-d", str(tmp_path / "site")]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "cookbook" / "index.html").exists()


async def test_nightly_account_export_example_exports_one_day(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """The nightly job exports the campaigns created on the day asked, and only those."""
    from datetime import datetime, timedelta, timezone

    ist = timezone(timedelta(hours=5, minutes=30))
    for campaign_id, day in (("before", 25), ("on-day", 26), ("after", 27)):
        created = datetime(2026, 11, day, 12, tzinfo=ist)
        sandbox.add_campaign(campaign_id, 30, created=created)
    example = load_example("nightly_account_export")
    progress = await example.export_day(datetime(2026, 11, 26).date(), tmp_path)
    assert progress.complete
    assert [e.campaign_id for e in progress.entries] == ["on-day"]
    written = (tmp_path / "2026-11-26" / "on-day.jsonl").read_text().splitlines()
    sids = [json.loads(line)["sid"] for line in written]
    assert sids == [r["sid"] for r in sandbox.records("on-day")]
