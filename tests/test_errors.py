"""The error tree's text: what ``str`` and ``repr`` tell a user, from real sandbox answers."""

from __future__ import annotations

import pytest

from exotel_async import BadRequestError, ExotelClient, NotFoundError


async def test_bad_request_message_carries_exotels_description(
    exotel_client: ExotelClient,
) -> None:
    """A 400 says which parameter Exotel refused and why, not only "Invalid parameter"."""
    with pytest.raises(BadRequestError) as info:
        await exotel_client.sms_details_page("demo", limit=1000)
    assert "Invalid parameter: limit must be an integer between 1 and 50" in str(info.value)
    assert "error code 1002" in str(info.value)


async def test_not_found_message_names_the_campaign(exotel_client: ExotelClient) -> None:
    """A 404 carries Exotel's description naming the missing campaign."""
    with pytest.raises(NotFoundError) as info:
        await exotel_client.sms_details_page("nosuch")
    assert "HTTP 404: Not Found: No campaign with id nosuch" in str(info.value)


async def test_repr_shows_status_and_request_id(exotel_client: ExotelClient) -> None:
    """``repr`` of an API error shows the status code and Exotel's request id."""
    with pytest.raises(NotFoundError) as info:
        await exotel_client.sms_details_page("nosuch")
    text = repr(info.value)
    assert text.startswith("NotFoundError(status_code=404, ")
    assert info.value.request_id
    assert repr(info.value.request_id) in text
