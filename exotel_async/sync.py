"""Sync campaigns into a database, and follow them until every SMS is final.

```python
from exotel_async.sync import open_database, sync_campaign

async with ExotelClient.from_env() as client, open_database("sqlite:///sms.db") as db:
    summary = await sync_campaign(client, db, "491dd6c9...")
    print(summary.records, summary.transitions, summary.outcomes)
```

The tables (``exotel_sms``, ``exotel_status_history``, ``exotel_sync_state``,
``exotel_schema_version``, and in SQLite ``exotel_staged_sms``) are created on first use;
see the "Sync to a database" page.
"""

from ._database import (
    HISTORY_TABLE,
    RECORD_COLUMNS,
    SCHEMA_VERSION,
    SEEN_REFRESH,
    SMS_TABLE,
    STAGED_TABLE,
    STATE_TABLE,
    VERSION_TABLE,
    Database,
    SchemaError,
)
from ._follow import FINAL_OUTCOMES, Follow, FollowSummary, Transition, is_final
from ._sync import follow, follow_campaign, open_database, sync_campaign, wait_until_final

__all__ = [
    "FINAL_OUTCOMES",
    "HISTORY_TABLE",
    "RECORD_COLUMNS",
    "SCHEMA_VERSION",
    "SEEN_REFRESH",
    "SMS_TABLE",
    "STAGED_TABLE",
    "STATE_TABLE",
    "VERSION_TABLE",
    "Database",
    "Follow",
    "FollowSummary",
    "SchemaError",
    "Transition",
    "follow",
    "follow_campaign",
    "is_final",
    "open_database",
    "sync_campaign",
    "wait_until_final",
]
