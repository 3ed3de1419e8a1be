"""A FastAPI endpoint that streams a campaign's SMS as NDJSON, one record per line."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse

from exotel_async import ExotelClient, NotFoundError, SmsRecord, converter


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # One client, so one connection pool and one rate-limit budget, for the whole service.
    async with ExotelClient.from_env() as client:
        app.state.exotel = client
        yield


app = FastAPI(lifespan=lifespan)


def ndjson_line(sms: SmsRecord) -> str:
    return json.dumps(converter.unstructure(sms), ensure_ascii=False) + "\n"


@app.get("/campaigns/{campaign_id}/sms.ndjson")
async def campaign_sms(campaign_id: str, number: str | None = None) -> StreamingResponse:
    client: ExotelClient = app.state.exotel
    try:
        stream = client.sms_details(campaign_id, number=number)
    except ValueError as exc:  # a malformed id or number, refused before any request
        raise HTTPException(status_code=400, detail=str(exc)) from None
    records = aiter(stream)
    # Fetch the first record before answering, so an unknown campaign is a 404, not a
    # stream cut short after a 200.
    try:
        first = await anext(records, None)
    except NotFoundError:
        raise HTTPException(status_code=404, detail="no such campaign") from None

    async def body() -> AsyncIterator[str]:
        if first is None:
            return
        yield ndjson_line(first)
        async for sms in records:
            yield ndjson_line(sms)

    return StreamingResponse(body(), media_type="application/x-ndjson")
