"""The HTML campaign report: parsed with the standard library's html.parser."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest

from exotel_async import SmsRecord, converter
from exotel_async._report import CampaignSummary, Timeline, render_html
from exotel_async.testing import Sandbox

TOTAL = 3000
_VOID = {"meta", "br", "img", "hr", "input", "link", "rect", "line"}
IST = timezone(timedelta(hours=5, minutes=30))
HOSTILE = '<script>alert("x")</script> O\'Brien \u202eevil'


class Page(HTMLParser):
    """The parts of a page the tests look at, and whether its tags nest."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: Counter[str] = Counter()
        self.figures: list[int] = []  # <svg> elements inside each <figure>
        self.tables: list[list[list[str]]] = []
        self.text: list[str] = []
        self.attributes: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        self.attributes += [value or "" for _, value in attrs]
        if tag == "figure":
            self.figures.append(0)
        elif tag == "svg" and "figure" in self.stack:
            self.figures[-1] += 1
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.tables[-1][-1].append("")
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        self.attributes += [value or "" for _, value in attrs]

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        assert self.stack[-1:] == [tag], f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self.stack and self.stack[-1] in ("td", "th"):
            self.tables[-1][-1][-1] += data

    def table(self, first_header: str) -> list[list[str]]:
        """The body rows of the table whose first column is headed ``first_header``."""
        return next(t[1:] for t in self.tables if t[0][0] == first_header)


def summarise(records: Iterable[SmsRecord]) -> CampaignSummary:
    summary = CampaignSummary()
    for record in records:
        summary.add(record)
    return summary


def sandbox_records() -> list[SmsRecord]:
    """The records of a sandbox campaign, structured without the client."""
    sandbox = Sandbox(campaigns={"c1": TOTAL})
    return [converter.structure(raw, SmsRecord) for raw in sandbox.records("c1")]


def hostile_record(i: int) -> SmsRecord:
    return SmsRecord(
        sid=f"s{i}",
        number="+919800000000",
        name=HOSTILE,
        message=HOSTILE,
        status="failed",
        detailed_status=HOSTILE,
        schedule_time=datetime(2026, 1, 1, 9, tzinfo=IST),
    )


def test_report_is_well_formed_with_one_svg_per_chart() -> None:
    """Tags nest, the page has one head and body, and each of the three charts is one SVG."""
    page = Page(render_html(summarise(sandbox_records()), "c1"))
    assert page.stack == []
    assert page.tags["html"] == page.tags["head"] == page.tags["body"] == 1
    assert page.figures == [1, 1, 1]
    assert page.tags["svg"] == 3
    assert page.tags["script"] == 0


def test_report_counts_every_record() -> None:
    """Each table adds up to the sandbox's records, status by status."""
    records = sandbox_records()
    page = Page(render_html(summarise(records), "c1"))
    statuses = {row[0]: int(row[1]) for row in page.table("status") if row[0] != "total"}
    assert statuses == Counter(r.status for r in records)
    assert sum(int(row[1]) for row in page.table("stage")) == TOTAL
    assert sum(int(row[-1]) for row in page.table("from")) == TOTAL
    assert f"{TOTAL} SMS" in "".join(page.text)


def test_report_escapes_hostile_values_from_the_api() -> None:
    """Markup, quotes and a right-to-left override in a status and the id appear only as text."""
    html = render_html(summarise(hostile_record(i) for i in range(3)), '"><script>x')
    page = Page(html)
    assert page.tags["script"] == 0
    assert "<script" not in html
    assert "\u202e" not in html
    text = "".join(page.text)
    assert '<script>alert("x")</script> O\'Brien <U+202E>evil' in text
    assert '"><script>x' in text
    assert not any("<" in value for value in page.attributes)


def test_report_holds_no_names_or_message_text() -> None:
    """Names and messages stay out of the report, so it can be shared."""
    record = SmsRecord(sid="s0", number="+919811111111", name="Priya", message="OTP 123456")
    html = render_html(summarise([record]), "c1")
    assert "Priya" not in html
    assert "123456" not in html
    assert "9811111111" not in html


def test_timeline_bars_are_hours_for_a_day_long_campaign() -> None:
    """SMS spread over a day are drawn one bar per hour, in the records' time zone."""
    start = datetime(2026, 1, 1, tzinfo=IST)
    timeline = Timeline()
    for minute in range(0, 24 * 60, 7):
        timeline.add(start + timedelta(minutes=minute), "delivered")
    width, bars = timeline.bars()
    assert width == 3600
    assert len(bars) == 24
    assert bars[0][0] == datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()  # IST midnight
    assert sum(sum(bar.values()) for _, bar in bars) == len(range(0, 24 * 60, 7))


def test_timeline_memory_stays_bounded_when_times_are_spread_thin() -> None:
    """A server scattering schedule times over centuries coarsens the counts, and loses none."""
    timeline = Timeline()
    start = datetime(1900, 1, 1, tzinfo=timezone.utc)
    for i in range(60_000):
        timeline.add(start + timedelta(days=i * 2), "failed")
    _, bars = timeline.bars()
    assert len(timeline.counts) <= 50_000
    assert len(bars) <= 40
    assert sum(sum(bar.values()) for _, bar in bars) == 60_000


def test_summary_html_writes_the_report_from_the_cli(tmp_path: Path) -> None:
    """``summary --sandbox demo --html PATH`` writes a report counting all 5000 demo SMS."""
    out = tmp_path / "report.html"
    command = [sys.executable, "-m", "exotel_async.cli", "summary", "demo", "--sandbox"]
    result = subprocess.run(
        [*command, "--html", str(out)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "5000 SMS" in result.stderr
    page = Page(out.read_text(encoding="utf-8"))
    assert sum(int(row[1]) for row in page.table("stage")) == 5000


def _chromium() -> str | None:
    names = ("chromium", "chromium-browser", "google-chrome", "chrome", "headless_shell")
    return next((path for name in names if (path := shutil.which(name))), None)


@pytest.mark.skipif(
    _chromium() is None, reason="no Chromium on PATH (chromium, chromium-browser, google-chrome)"
)
def test_report_renders_in_chromium_without_console_errors(tmp_path: Path) -> None:
    """Headless Chromium loads the report and logs no console error or policy violation."""
    page = tmp_path / "report.html"
    page.write_text(render_html(summarise(sandbox_records()), "c1"), encoding="utf-8")
    browser = _chromium()
    assert browser is not None
    result = subprocess.run(
        [browser, "--headless", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr",
         "--v=0", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "<svg" in result.stdout
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line]
    assert console == []
