"""Bulk export for library users: the same engine as ``exotel-async export``.

```python
from exotel_async.export import ExportRequest, run_export

async with ExotelClient.from_env() as client:
    request = ExportRequest("491dd6c9...", Path("sms.jsonl"), resume=True)
    progress = await run_export(client, request)
```

Every campaign of the account, one file each and a ``manifest.json``:

```python
from exotel_async.export import AccountExportRequest, run_account_export

async with ExotelClient.from_env() as client:
    request = AccountExportRequest(Path("exports"), status="completed", resume=True)
    progress = await run_account_export(client, request, client.campaigns())
```
"""

from ._account_export import (
    AccountExportRequest,
    AccountProgress,
    Manifest,
    ManifestEntry,
    load_manifest,
    manifest_path,
    run_account_export,
)
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
    "AccountExportRequest",
    "AccountProgress",
    "Checkpoint",
    "ExportProgress",
    "ExportRefused",
    "ExportRequest",
    "Format",
    "Manifest",
    "ManifestEntry",
    "checkpoint_path",
    "load_checkpoint",
    "load_manifest",
    "manifest_path",
    "run_account_export",
    "run_export",
]
