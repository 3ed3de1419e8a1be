"""``exotel-async campaigns`` and ``exotel-async export --all``: usage, and runs over loopback."""

from __future__ import annotations

import json
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exotel_async import Campaign
from exotel_async.cli import main
from exotel_async.export import load_manifest, manifest_path
from exotel_async.testing import Sandbox, SandboxCampaign, make_account
from tests.test_cli import env_for, run, sids, start, stderr_line

#: Eight campaigns, one of them archived.
ACCOUNT = make_account(8, 2_000, max_records=600, seed=11)
SENT = [c for c in ACCOUNT if c.status.lower() != "archived"]
(ARCHIVED,) = [c.campaign_id for c in ACCOUNT if c.status.lower() == "archived"]


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    """A sandbox serving ACCOUNT."""
    async with Sandbox(campaigns=ACCOUNT, seed=11) as sb:
        yield sb


def assert_exact(sandbox: Sandbox, out: Path, campaigns: list[SandboxCampaign]) -> None:
    """Every campaign's file holds its records once, in order."""
    for campaign in campaigns:
        served = [r["sid"] for r in sandbox.records(campaign.campaign_id)]
        assert sids(out / f"{campaign.campaign_id}.jsonl") == served


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["export", "--all"], "--all needs --output-dir"),
        (["export", "c1", "--all", "--output-dir", "d"], "drop CAMPAIGN_ID"),
        (["export", "--all", "--output", "e5"], "give --output-dir DIR instead of --output"),
        (["export", "--all", "--output-dir", "d", "--number", "+9190"], "--number applies"),
        (["export", "--all", "--output-dir", "d", "--max-items", "3"], "--max-items applies"),
        (["export", "--output", "x.jsonl"], "give a CAMPAIGN_ID, or --all"),
        (["export", "c1"], "give --output"),
        (["export", "c1", "-o", "x.jsonl", "--output-dir", "d"], "--output-dir applies to --all"),
        (["export", "c1", "-o", "x.jsonl", "--since", "2026-11-01"], "--since applies to --all"),
        (["export", "c1", "-o", "x.jsonl", "--skip-status", "paused"], "--skip-status applies"),
        (["export", "--all", "--output-dir", "d", "--status", "done"], "expected one of"),
        (["export", "--all", "--output-dir", "d", "--status", "unknown"], "expected one of"),
        (["export", "--all", "--output-dir", "d", "--since", "last week"], "expected a date"),
    ],
)
def test_export_target_mistakes_are_one_line_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Mixing one campaign's flags with --all's is refused with status 2 and one line."""
    assert main([*argv, "--sandbox"]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1


async def test_campaigns_json_lists_every_campaign(sandbox: Sandbox) -> None:
    """``campaigns --json`` prints every campaign with its id, name and raw status."""
    result = await run("campaigns", "--json", env=env_for(sandbox))
    assert result.code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["campaign_id"], r["status"]) for r in rows] == [
        (c.campaign_id, c.status) for c in ACCOUNT
    ]


async def test_campaigns_piped_prints_one_whole_line_per_campaign(sandbox: Sandbox) -> None:
    """Piped, ``campaigns`` prints a header and one tab-separated line each, nothing cut."""
    result = await run("campaigns", env=env_for(sandbox))
    assert result.code == 0, result.stderr
    header, *lines = result.stdout.splitlines()
    assert header.split("\t") == ["id", "name", "status", "created"]
    rows = [line.split("\t") for line in lines]
    assert [(r[0], r[2]) for r in rows] == [(c.campaign_id, c.status) for c in ACCOUNT]
    assert all(len(r) == 4 and (r[3] == "" or r[3].count(":") >= 3) for r in rows)


async def test_export_all_records_the_archived_campaign_and_exits_1(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """The archived campaign's 404 is in the manifest; the others are exact; status 1."""
    out = tmp_path / "out"
    result = await run("export", "--all", "--output-dir", str(out), env=env_for(sandbox))
    assert result.code == 1, result.stderr
    assert f"{len(SENT)} of {len(ACCOUNT)} campaigns complete, 1 failed" in result.stderr
    assert f"{ARCHIVED}: NotFoundError" in result.stderr
    assert_exact(sandbox, out, SENT)
    (failed,) = [e for e in load_manifest(manifest_path(out)).campaigns if not e.complete]
    assert failed.campaign_id == ARCHIVED


async def test_export_all_with_status_exits_0(sandbox: Sandbox, tmp_path: Path) -> None:
    """Only completed campaigns, all complete: status 0."""
    out = tmp_path / "out"
    args = ("export", "--all", "--status", "completed", "--output-dir", str(out))
    result = await run(*args, env=env_for(sandbox))
    assert result.code == 0, result.stderr
    completed = [c for c in ACCOUNT if c.status.lower() == "completed"]
    assert_exact(sandbox, out, completed)


async def test_export_all_skipping_archived_exits_0(sandbox: Sandbox, tmp_path: Path) -> None:
    """--skip-status archived leaves out the campaign whose details are gone: status 0."""
    out = tmp_path / "out"
    args = ("export", "--all", "--skip-status", "archived", "--output-dir", str(out))
    result = await run(*args, env=env_for(sandbox))
    assert result.code == 0, result.stderr
    assert_exact(sandbox, out, SENT)
    listed = {e.campaign_id for e in load_manifest(manifest_path(out)).campaigns}
    assert ARCHIVED not in listed


async def test_export_all_again_needs_resume_or_force(sandbox: Sandbox, tmp_path: Path) -> None:
    """A second run into the same folder is a one-line usage error naming --resume."""
    args = ("export", "--all", "--status", "completed", "--output-dir", str(tmp_path / "o"))
    await run(*args, env=env_for(sandbox))
    result = await run(*args, env=env_for(sandbox))
    assert result.code == 2
    assert "--resume" in result.stderr


async def test_sigkill_then_resume_exports_every_campaign_exactly(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Killed mid-way, --resume finishes: each file holds its campaign's records once."""
    sandbox.archived_gone = False
    sandbox.hold(after=20)
    out = tmp_path / "out"
    args = ("export", "--all", "--output-dir", str(out), "--page-size", "20")
    process = await start(*args, env=env_for(sandbox))
    await sandbox.held(2)
    process.kill()
    await process.wait()
    sandbox.release()
    result = await run(*args, "--resume", env=env_for(sandbox))
    assert result.code == 0, result.stderr
    assert_exact(sandbox, out, ACCOUNT)
    assert load_manifest(manifest_path(out)).complete


async def test_ctrl_c_stops_every_campaign_and_exits_130(sandbox: Sandbox, tmp_path: Path) -> None:
    """SIGINT lets the active campaigns checkpoint, prints how to resume, exits 130."""
    sandbox.hold(after=6)
    out = tmp_path / "out"
    args = ("export", "--all", "--output-dir", str(out), "--page-size", "20")
    process = await start(*args, env=env_for(sandbox))
    await sandbox.held()
    process.send_signal(signal.SIGINT)
    assert "stopping after the page in hand" in await stderr_line(process)
    sandbox.release()
    _, err = await process.communicate()
    assert process.returncode == 130
    assert "--resume" in err.decode()
    assert not load_manifest(manifest_path(out)).complete


async def test_export_all_on_the_embedded_sandbox(tmp_path: Path) -> None:
    """``export --all --sandbox`` exports the bundled account with no credentials."""
    out = tmp_path / "out"
    result = await run("export", "--all", "--sandbox", "--output-dir", str(out), env=env_for(None))
    assert result.code == 0, result.stderr
    assert load_manifest(manifest_path(out)).complete


def test_progress_shows_totals_and_a_bar_for_the_first_active_campaigns() -> None:
    """On a terminal: campaigns and records done, and bars for at most 8 active campaigns."""
    import io

    from exotel_async.cli import _account_progress_printer
    from exotel_async.export import AccountProgress, ExportProgress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    update, finish = _account_progress_printer(screen)
    progress = AccountProgress(campaigns=12, completed=2, finished_records=500, elapsed=1.0)
    progress.active = {f"campaign{n:02d}": ExportProgress(records=n) for n in range(10)}
    update(progress)
    finish()
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())  # colours and moves
    assert "2/12 done, 0 failed, 10 active; 545 records" in shown
    assert "7/? records" in shown
    assert "campaign07" in shown
    assert "campaign08" not in shown


async def test_sandbox_command_serves_the_account_that_dash_dash_sandbox_does() -> None:
    """``exotel-async sandbox`` with no options serves demo and nine more, as ``--sandbox``."""
    from exotel_async.cli import build_parser
    from exotel_async.testing.__main__ import campaigns_from
    from exotel_async.testing._account import demo_account

    args = build_parser().parse_args(["sandbox"])
    assert campaigns_from(args) == demo_account()
    assert len(demo_account()) == 10


def test_campaigns_on_a_terminal_prints_a_titled_table(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a terminal, ``campaigns`` draws a table titled with the count."""
    from exotel_async.cli import _print_campaigns  # the terminal path, no pty needed

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    _print_campaigns([Campaign(ARCHIVED, name="Old", status="Archived")])
    out = capsys.readouterr().out
    assert "1 SMS campaigns" in out
    assert ARCHIVED in out
