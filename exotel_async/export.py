"""Bulk export for library users: the same engine as ``exotel-async export``.

```python
from exotel_async.export import ExportRequest, run_export

async with ExotelClient.from_env() as client:
    request = ExportRequest("491dd6c9...", Path("sms.jsonl"), resume=True)
    progress = await run_export(client, request)
```
"""

from ._errors import ExportRefused
from ._export import (
    CSV_COLUMNS,
    FORMATS,
    Checkpoint,
    ExportProgress,
    ExportRequest,
    Format,
    checkpoint_path,
    load_checkpoint,
    run_export,
)

__all__ = [
    "CSV_COLUMNS",
    "FORMATS",
    "Checkpoint",
    "ExportProgress",
    "ExportRefused",
    "ExportRequest",
    "Format",
    "checkpoint_path",
    "load_checkpoint",
    "run_export",
]
