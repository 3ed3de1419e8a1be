"""``exotel-async campaigns`` and ``exotel-async export --all``: usage, and runs over loopback."""

from __future__ import annotations

import pytest

from exotel_async.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["export", "--all"], "--all needs --output-dir"),
        (["export", "c1", "--all", "--output-dir", "d"], "drop CAMPAIGN_ID"),
        (["export", "--all", "--output-dir", "d", "--number", "+9190"], "--number applies"),
        (["export", "--all", "--output-dir", "d", "--max-items", "3"], "--max-items applies"),
        (["export", "--output", "x.jsonl"], "give a CAMPAIGN_ID, or --all"),
        (["export", "c1"], "give --output"),
        (["export", "c1", "-o", "x.jsonl", "--output-dir", "d"], "--output-dir applies to --all"),
        (["export", "c1", "-o", "x.jsonl", "--since", "2026-11-01"], "--since applies to --all"),
        (["export", "--all", "--output-dir", "d", "--status", "done"], "expected one of"),
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
