"""A campaign's counts, and the self-contained HTML report drawn from them.

The report is one file with no scripts and nothing fetched: charts are inline SVG drawn here,
and a Content-Security-Policy forbids anything else. It holds counts only (no numbers, names
or message text), so it can be shared. Every value from the API passes through ``_text``.
"""

from __future__ import annotations

import html
import itertools
import math
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs

from ._models import Outcome, SmsRecord

#: Where an SMS stands now, in the order it travels; ``failed`` may leave at any point.
STAGES = ("queued", "submitted", "sent", "delivered", "failed", "other")
_MINUTE, _HOUR, _DAY = 60, 3600, 86400
_YEAR = 364 * _DAY  # 52 weeks, so that a year is a whole number of the widths below it
# Resolutions the timeline stores at; it coarsens when a server spreads times too thinly.
_LEVELS = (_MINUTE, _HOUR, _DAY, _YEAR)
_MAX_KEYS = 50_000
# Bar widths a reader knows, smallest first; each is a multiple of the levels below it.
_WIDTHS = (
    _MINUTE,
    5 * _MINUTE,
    15 * _MINUTE,
    30 * _MINUTE,
    _HOUR,
    3 * _HOUR,
    6 * _HOUR,
    12 * _HOUR,
    _DAY,
    7 * _DAY,
    28 * _DAY,
    _YEAR,
)
_MAX_BARS = 40
_MAX_ROWS = 12  # bars in a chart; the rest are summed into one row
_MAX_TABLE_ROWS = 50
_MAX_LABEL = 60
_COLOURS = {
    Outcome.DELIVERED.value: "#2e7d32",
    Outcome.PENDING.value: "#f9a825",
    Outcome.FAILED.value: "#c62828",
    Outcome.UNKNOWN.value: "#757575",
}
_STAGE_COLOURS = dict.fromkeys(STAGES, "#1565c0") | {"failed": "#c62828", "other": "#757575"}


def funnel_stage(record: SmsRecord) -> str:
    """The stage of ``STAGES`` an SMS stands at, from its outcome and raw status."""
    outcome = record.outcome
    if outcome is Outcome.FAILED:
        return "failed"
    if outcome is Outcome.UNKNOWN:
        return "other"
    status = (record.status or "").strip().lower()
    detail = (record.detailed_status or "").strip().upper()
    if outcome is Outcome.DELIVERED:
        handset = status == "delivered" or detail == "DELIVERED_TO_HANDSET"
        return "delivered" if handset else "sent"
    return {"queued": "queued", "sent": "sent"}.get(status, "submitted")


@attrs.define
class Timeline:
    """SMS counted by outcome per slice of ``schedule_time``, in bounded memory."""

    resolution: int = _MINUTE
    offset: int | None = None  # seconds east of UTC of the first time seen; buckets align to it
    counts: Counter[tuple[int, str]] = attrs.field(factory=Counter)
    missing: int = 0

    def add(self, when: datetime | None, outcome: str) -> None:
        """Count one SMS scheduled at ``when`` (None: not scheduled)."""
        if when is None:
            self.missing += 1
            return
        if self.offset is None:
            delta = when.utcoffset()
            self.offset = int(delta.total_seconds()) if delta is not None else 0
        local = math.floor(when.timestamp()) + self.offset
        self.counts[local - local % self.resolution, outcome] += 1
        if len(self.counts) > _MAX_KEYS and self.resolution != _LEVELS[-1]:
            self._coarsen()

    def _coarsen(self) -> None:
        """Move to the next resolution, merging the counts."""
        self.resolution = _LEVELS[_LEVELS.index(self.resolution) + 1]
        merged: Counter[tuple[int, str]] = Counter()
        for (start, outcome), n in self.counts.items():
            merged[start - start % self.resolution, outcome] += n
        self.counts = merged

    def bars(self) -> tuple[int, list[tuple[int, Counter[str]]]]:
        """The bar width in seconds and every bar's start (local epoch) with its counts."""
        if not self.counts:
            return self.resolution, []
        first = min(start for start, _ in self.counts)
        last = max(start for start, _ in self.counts)

        def fits(w: int) -> bool:
            return w >= self.resolution and (last - first + first % w) // w < _MAX_BARS

        widths = itertools.chain(_WIDTHS, (_YEAR * k for k in itertools.count(2)))
        width = next(w for w in widths if fits(w))
        origin = first - first % width
        bars: list[Counter[str]] = [Counter() for _ in range((last - origin) // width + 1)]
        for (start, outcome), n in self.counts.items():
            bars[(start - origin) // width][outcome] += n
        return width, [(origin + i * width, bar) for i, bar in enumerate(bars)]


@attrs.define
class CampaignSummary:
    """Counts of one campaign's SMS by status, detailed status, outcome, stage and time."""

    records: int = 0
    by_status: Counter[str] = attrs.field(factory=Counter)
    by_detailed_status: Counter[str] = attrs.field(factory=Counter)
    by_outcome: Counter[str] = attrs.field(factory=Counter)
    failure_reasons: Counter[str] = attrs.field(factory=Counter)
    by_stage: Counter[str] = attrs.field(factory=Counter)
    timeline: Timeline = attrs.field(factory=Timeline)

    def add(self, record: SmsRecord) -> None:
        """Count one record."""
        outcome = record.outcome
        self.records += 1
        self.by_status[record.status or "(none)"] += 1
        self.by_detailed_status[record.detailed_status or "(none)"] += 1
        self.by_outcome[outcome.value] += 1
        self.by_stage[funnel_stage(record)] += 1
        self.timeline.add(record.schedule_time, outcome.value)
        if outcome is Outcome.FAILED:
            self.failure_reasons[record.detailed_status or record.status or "(none)"] += 1

    @property
    def delivery_rate(self) -> float:
        """Share of records delivered (to the handset or the operator)."""
        return self.by_outcome[Outcome.DELIVERED.value] / self.records if self.records else 0.0

    def as_dict(self, campaign_id: str, top: int = 5) -> dict[str, Any]:
        """The summary as plain JSON-ready data, largest counts first."""
        return {
            "campaign_id": campaign_id,
            "records": self.records,
            "delivery_rate": round(self.delivery_rate, 6),
            "by_outcome": dict(self.by_outcome.most_common()),
            "by_status": dict(self.by_status.most_common()),
            "by_detailed_status": dict(self.by_detailed_status.most_common()),
            "top_failure_reasons": [
                {"reason": reason, "count": n}
                for reason, n in self.failure_reasons.most_common(top)
            ],
        }


def _text(value: object, limit: int = _MAX_LABEL) -> str:
    """``value`` made safe for HTML text or an attribute: controls shown, long text cut."""
    raw = str(value)
    if len(raw) > limit:
        raw = raw[: limit - 1] + "…"
    # Bidi overrides and other invisible characters could reorder or hide what the page says.
    shown = "".join(
        f"<U+{ord(c):04X}>" if unicodedata.category(c) in ("Cc", "Cf") else c for c in raw
    )
    return html.escape(shown, quote=True)


def _share(n: int, total: int) -> str:
    return f"{n / total:.1%}" if total else "0.0%"


def _top(counts: Counter[str], n: int) -> list[tuple[str, int]]:
    """The ``n`` largest counts, the rest summed into one row."""
    rows = counts.most_common()
    if len(rows) <= n:
        return rows
    rest = rows[n - 1 :]
    return [*rows[: n - 1], (f"{len(rest)} others", sum(count for _, count in rest))]


def _svg(width: int, height: int, label: str, body: Iterable[str]) -> str:
    """An SVG that scales to its container, with an accessible name."""
    return (
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{_text(label)}" '
        f'xmlns="http://www.w3.org/2000/svg" font-family="system-ui, sans-serif" '
        f'font-size="13">{"".join(body)}</svg>'
    )


def _bar_chart(
    rows: Sequence[tuple[str, int]], total: int, label: str, colours: dict[str, str]
) -> str:
    """Horizontal bars, one per row, each with its count and share of ``total``."""
    row_height, left, bar_area = 26, 300, 300
    peak = max((n for _, n in rows), default=0) or 1
    body = []
    for i, (key, n) in enumerate(rows):
        y = 6 + i * row_height
        length = round(bar_area * n / peak, 1)
        colour = colours.get(key, "#1565c0")
        body.append(
            f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{_text(key, 34)}</text>'
            f'<rect x="{left}" y="{y + 2}" width="{length}" height="{row_height - 8}" '
            f'fill="{colour}"><title>{_text(key)}: {n}</title></rect>'
            f'<text x="{left + length + 6}" y="{y + 15}">{n} ({_share(n, total)})</text>'
        )
    return _svg(720, 12 + row_height * max(len(rows), 1), label, body)


def _when(local_epoch: int, width: int) -> str:
    moment = datetime(1970, 1, 1) + timedelta(seconds=local_epoch)
    return moment.strftime("%Y-%m-%d" if width >= _DAY else "%Y-%m-%d %H:%M")


def _duration(seconds: int) -> str:
    """``seconds`` in the largest unit that divides it: "hour", "15 minutes", "4 weeks"."""
    for unit, name in ((7 * _DAY, "week"), (_DAY, "day"), (_HOUR, "hour"), (_MINUTE, "minute")):
        if seconds % unit == 0:
            n = seconds // unit
            return name if n == 1 else f"{n} {name}s"
    return f"{seconds} seconds"


def _utc_offset(seconds: int) -> str:
    sign, minutes = "+-"[seconds < 0], abs(seconds) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _timeline_chart(timeline: Timeline) -> str:
    """Stacked vertical bars of SMS per slice of schedule time, coloured by outcome."""
    width, bars = timeline.bars()
    left, top, plot_w, plot_h = 56, 28, 640, 180
    peak = max((sum(bar.values()) for _, bar in bars), default=0) or 1
    step = plot_w / max(len(bars), 1)
    body = [
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        'stroke="#444"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">{peak}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end">0</text>',
    ]
    for i, (start, bar) in enumerate(bars):
        y = float(top + plot_h)
        for outcome, colour in _COLOURS.items():
            height = plot_h * bar[outcome] / peak
            if not height:
                continue
            y -= height
            body.append(
                f'<rect x="{left + i * step + 1:.1f}" y="{y:.1f}" '
                f'width="{max(step - 2, 1):.1f}" height="{height:.1f}" fill="{colour}">'
                f"<title>{_when(start, width)}: {bar[outcome]} {outcome}</title></rect>"
            )
    for i in sorted({0, len(bars) // 2, len(bars) - 1}) if bars else ():
        anchor = "start" if i == 0 else "end" if i == len(bars) - 1 else "middle"
        x = left + i * step + (0 if i == 0 else step if anchor == "end" else step / 2)
        body.append(
            f'<text x="{x:.1f}" y="{top + plot_h + 18}" text-anchor="{anchor}">'
            f"{_when(bars[i][0], width)}</text>"
        )
    for i, (outcome, colour) in enumerate(_COLOURS.items()):
        x = left + i * 120
        body.append(
            f'<rect x="{x}" y="4" width="12" height="12" fill="{colour}"/>'
            f'<text x="{x + 17}" y="15">{outcome}</text>'
        )
    return _svg(720, top + plot_h + 28, "SMS per slice of schedule time, by outcome", body)


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A table whose first column is text and the rest numbers."""
    head = "".join(f'<th scope="col">{_text(h)}</th>' for h in headers)
    lines = []
    for row in rows:
        first, *rest = row
        cells = "".join(f'<td class="n">{_text(cell)}</td>' for cell in rest)
        lines.append(f"<tr><td>{_text(first)}</td>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"


def _counted(heading: str, counts: Counter[str], total: int) -> str:
    """A table of counts, largest first, bounded in length, with a total row."""
    rows = [(key, n, _share(n, total)) for key, n in _top(counts, _MAX_TABLE_ROWS)]
    return _table((heading, "SMS", "share"), [*rows, ("total", sum(counts.values()), "")])


def _figure(title: str, chart: str, note: str, table: str) -> str:
    return (
        f"<section><h2>{title}</h2><figure>{chart}<figcaption>{note}</figcaption></figure>"
        f"{table}</section>"
    )


def _funnel(summary: CampaignSummary) -> str:
    reached = [
        (stage, sum(summary.by_stage[s] for s in STAGES[i:4])) for i, stage in enumerate(STAGES[:4])
    ]
    rows = [*reached, ("failed", summary.by_stage["failed"])]
    if summary.by_stage["other"]:
        rows.append(("other", summary.by_stage["other"]))
    table = _table(
        ("stage", "SMS there now", "reached it"),
        [(s, summary.by_stage[s], dict(rows).get(s, summary.by_stage[s])) for s in STAGES],
    )
    note = (
        "Each bar counts the SMS that reached the stage and did not fail: sent means handed to "
        "the operator, delivered means to the handset. Failed SMS left at one stage or another."
    )
    chart = _bar_chart(rows, summary.records, "Delivery funnel", _STAGE_COLOURS)
    return _figure("Delivery funnel", chart, note, table)


def _failures(summary: CampaignSummary) -> str:
    failed = sum(summary.failure_reasons.values())
    rows = _top(summary.failure_reasons, _MAX_ROWS)
    chart = _bar_chart(rows, failed, "Failures by detailed status", {})
    note = f"{failed} failed SMS by detailed_status; shares are of the failures."
    return _figure(
        "Failures by detailed status",
        chart,
        note,
        _counted("failure reason", summary.failure_reasons, failed),
    )


def _schedule(summary: CampaignSummary) -> str:
    timeline = summary.timeline
    width, bars = timeline.bars()
    size = _duration(width)
    zone = _utc_offset(timeline.offset or 0)
    note = f"SMS by schedule_time, one bar per {size}, times in {zone}."
    if timeline.missing:
        note += f" {timeline.missing} SMS had no schedule_time and are not drawn."
    rows = [
        (_when(start, width), *(bar[o] for o in _COLOURS), sum(bar.values()))
        for start, bar in bars
        if bar
    ]
    table = _table(("from", *_COLOURS, "all"), rows)
    return _figure("Deliveries over schedule time", _timeline_chart(timeline), note, table)


def _walked(summary: CampaignSummary) -> str:
    cards = [("SMS", summary.records), ("delivery rate", f"{summary.delivery_rate:.1%}")]
    cards += [(outcome, summary.by_outcome[outcome]) for outcome in _COLOURS]
    items = "".join(f"<div><dt>{_text(k)}</dt><dd>{_text(v)}</dd></div>" for k, v in cards)
    return (
        f'<section><h2>Counts from walking every SMS</h2><dl class="cards">{items}</dl>'
        "<p>Campaign counters: not available from this API version, so these counts come "
        "from walking the campaign's SMS one by one.</p>"
        f"<h3>By status</h3>{_counted('status', summary.by_status, summary.records)}"
        f"<h3>By detailed status</h3>"
        f"{_counted('detailed status', summary.by_detailed_status, summary.records)}"
        "</section>"
    )


_CSS = """
body{font:15px/1.45 system-ui,sans-serif;color:#1a1a1a;max-width:60rem;margin:0 auto;
padding:1rem}
h1{font-size:1.5rem;overflow-wrap:anywhere}h2{font-size:1.2rem;margin-top:2rem}
svg{display:block;width:100%;height:auto}
figure{margin:0}figcaption{color:#444;font-size:.9rem;margin:.3rem 0 .8rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{text-align:left;padding:.2rem .5rem;border-bottom:1px solid #ddd;overflow-wrap:anywhere}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(8rem,1fr));gap:.5rem;margin:0}
.cards div{border:1px solid #ddd;padding:.4rem .6rem}dt{color:#444;font-size:.85rem}
dd{margin:0;font-size:1.3rem;font-variant-numeric:tabular-nums}
section{break-inside:avoid}
@media (max-width:40rem){body{font-size:14px;padding:.5rem}th,td{padding:.15rem .3rem}}
@media print{body{max-width:none;padding:0;color:#000}
h2{break-after:avoid}}
"""


def render_html(
    summary: CampaignSummary, campaign_id: str, generated_at: datetime | None = None
) -> str:
    """The whole report as one self-contained HTML document."""
    when = (generated_at or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    title = f"Campaign {_text(campaign_id)}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">"
        f"<title>{title}: SMS report</title><style>{_CSS}</style></head><body>"
        f"<h1>{title}</h1><p>{summary.records} SMS, delivery rate "
        f"{summary.delivery_rate:.1%}. Generated {when} by exotel-async.</p>"
        f"{_funnel(summary)}{_failures(summary)}{_schedule(summary)}"
        f"{_walked(summary)}</body></html>\n"
    )
