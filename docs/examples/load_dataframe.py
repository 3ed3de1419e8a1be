"""Load an export into pandas, with typed timestamps and phone numbers kept as text."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def load_jsonl(path: Path) -> pd.DataFrame:
    """Read an ``exotel-async export`` JSONL file into a DataFrame."""
    frame = pd.read_json(path, lines=True, dtype={"number": str, "sid": str})
    for column in ("schedule_time", "date_created"):
        # The export writes ISO-8601 with the +05:30 offset; keep them aware, in UTC.
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    return frame


def delivery_by_day(frame: pd.DataFrame) -> pd.Series:
    """Share of SMS delivered, per day of schedule (India time)."""
    day = frame["schedule_time"].dt.tz_convert("Asia/Kolkata").dt.date
    delivered = frame["detailed_status"].str.startswith("DELIVERED")
    return delivered.groupby(day).mean()
