"""The sans-I/O layer, tested synchronously with recorded bodies."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest

from exotel_async import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ItemError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseDecodeError,
    ServerError,
    SmsRecord,
)
from exotel_async._converter import MAX_NESTING
from exotel_async._protocol import (
    PathForm,
    check_int,
    check_number,
    check_path_segment,
    check_sort_by,
    error_from_response,
    mask_number,
    parse_item,
    parse_page,
    parse_retry_after,
    sms_details_request,
)

SAMPLES = Path(__file__).parent / "samples"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def test_product_page_sample_parses_into_records() -> None:
    """The product page's sample, repaired, gives its three records and metadata."""
    page = parse_page(SmsRecord, 200, {}, sample("product_page.json"))
    assert page.request_id == "4dee72175b514f3591e153df7c89285d"
    assert (page.metadata.count, page.metadata.total, page.metadata.limit) == (5, 5, 10)
    assert [r.status for r in page.records] == ["sent", "failed", "failed_dnd"]


def test_product_page_sample_reads_message_and_body_into_one_field() -> None:
    """``message`` in one item and ``body`` in the next both land in ``message``."""
    page = parse_page(SmsRecord, 200, {}, sample("product_page.json"))
    assert {r.message for r in page.records} == {"your account is activated"}
    assert all("body" not in r.extra for r in page.records)


def test_product_page_sample_times_are_aware_ist() -> None:
    """``schedule_time`` keeps the +05:30 offset the product page shows."""
    record = parse_page(SmsRecord, 200, {}, sample("product_page.json")).records[0]
    assert record.schedule_time == datetime(
        2021, 11, 24, 14, 55, 19, tzinfo=timezone(timedelta(hours=5, minutes=30))
    )


def test_malformed_product_page_sample_raises_decode_error_with_status_and_excerpt() -> None:
    """The sample as printed is not JSON: a ResponseDecodeError, not a JSONDecodeError."""
    with pytest.raises(ResponseDecodeError) as info:
        parse_page(SmsRecord, 200, {}, sample("product_page_malformed.json"))
    assert info.value.status_code == 200
    assert "request_id" in info.value.excerpt
    assert info.value.retryable
    assert not isinstance(info.value, json.JSONDecodeError)


def test_unknown_fields_are_kept_in_extra() -> None:
    """A field this version does not know survives in ``extra``."""
    body = _page([{"sid": "a1", "number": "9876543210", "units": 2, "dlt": {"id": "x"}}])
    record = parse_page(SmsRecord, 200, {}, body).records[0]
    assert record.extra == {"units": 2, "dlt": {"id": "x"}}


def test_absent_optional_fields_are_none() -> None:
    """A record with only sid and number has None everywhere else."""
    record = parse_page(SmsRecord, 200, {}, _page([{"sid": "a1", "number": "9876543210"}])).records[
        0
    ]
    assert (record.name, record.message, record.schedule_time, record.date_created) == (None,) * 4


def test_naive_timestamp_is_read_as_india_time() -> None:
    """A timestamp without an offset gets +05:30, Exotel's own zone."""
    body = _page([{"sid": "a1", "number": "1", "date_created": "2021-11-24 14:55:19"}])
    created = parse_page(SmsRecord, 200, {}, body).records[0].date_created
    assert created is not None
    assert created.utcoffset() == timedelta(hours=5, minutes=30)


def test_record_with_a_bad_timestamp_names_the_field_and_offset() -> None:
    """A record that cannot be typed raises ResponseDecodeError naming where."""
    body = _page([{"sid": "a1", "number": "1", "schedule_time": "yesterday"}], offset=7)
    with pytest.raises(ResponseDecodeError, match=r"offset 7.*schedule_time"):
        parse_page(SmsRecord, 200, {}, body)


def test_record_without_sid_is_a_decode_error() -> None:
    """``sid`` is what de-duplication keys on, so a record without it is refused."""
    with pytest.raises(ResponseDecodeError, match="sid"):
        parse_page(SmsRecord, 200, {}, _page([{"number": "1"}]))


@pytest.mark.parametrize(
    ("field", "value"),
    [("status", {"code": 1}), ("number", True), ("sender_id", ["E"]), ("sid", None)],
)
def test_non_string_value_is_a_decode_error_naming_the_field(field: str, value: object) -> None:
    """An object, list, bool or null where text belongs is refused, naming the field."""
    body = _page([{"sid": "a1", "number": "1", field: value}])
    with pytest.raises(ResponseDecodeError, match=rf"offset 0.*{field}"):
        parse_page(SmsRecord, 200, {}, body)


@pytest.mark.parametrize("value", ["2021-13-45T00:00:00", 1637745919, ""])
def test_bad_second_timestamp_is_a_decode_error_naming_date_created(value: object) -> None:
    """An unparsable or non-text ``date_created`` after a good ``schedule_time`` is named."""
    item = {"sid": "a1", "number": "1", "schedule_time": "2021-11-24 14:55:19"}
    body = _page([{**item, "date_created": value}])
    with pytest.raises(ResponseDecodeError, match="date_created"):
        parse_page(SmsRecord, 200, {}, body)


def test_failed_item_is_returned_as_item_error_with_its_offset() -> None:
    """An item whose own status is failure becomes an ItemError at its absolute offset."""
    page = parse_page(SmsRecord, 200, {}, sample("page_item_failure.json"))
    assert [r.sid for r in page.records] == ["aa01"]
    (error,) = page.item_errors
    assert isinstance(error, ItemError)
    assert (error.offset, error.code) == (41, 500)
    assert error.error_data["code"] == 24010


def test_page_offset_other_than_asked_is_a_decode_error() -> None:
    """A page that answers another offset than the one asked cannot be trusted."""
    with pytest.raises(ResponseDecodeError, match="offset 20"):
        parse_page(SmsRecord, 200, {}, _page([], offset=0), expected_offset=20)


@pytest.mark.parametrize(
    "metadata",
    [
        None,
        {"count": 1, "offset": 0, "limit": 1},
        {"count": "1", "offset": 0, "total": 1, "limit": 1},
    ],
)
def test_missing_or_mistyped_metadata_is_a_decode_error(metadata: object) -> None:
    """``metadata`` must carry integer count, offset, total and limit."""
    body = json.dumps({"response": [], "metadata": metadata}).encode()
    with pytest.raises(ResponseDecodeError, match="metadata"):
        parse_page(SmsRecord, 200, {}, body)


def test_error_envelope_behind_a_200_raises_its_own_error() -> None:
    """A 200 carrying the v2 401 envelope is the AuthenticationError it describes."""
    with pytest.raises(AuthenticationError) as info:
        parse_page(SmsRecord, 200, {}, sample("error_401_v2.json"))
    assert info.value.request_id == "c6087d6c0b764ac7a4de3d4a4c25e5f7"


def test_rest_exception_behind_a_200_is_a_rate_limit_error() -> None:
    """A v1 429 body served with status 200 is still throttling, so it can be retried."""
    with pytest.raises(RateLimitError):
        parse_page(SmsRecord, 200, {"Retry-After": "2"}, sample("error_429_v1.json"))


def test_error_list_behind_a_200_uses_its_http_code() -> None:
    """A one-item error list whose ``http_code`` is 404 raises NotFoundError."""
    with pytest.raises(NotFoundError):
        parse_page(SmsRecord, 200, {}, sample("error_404_list.json"))


def test_wrong_shape_keeps_the_request_id() -> None:
    """A body that is not a page still reports Exotel's request id."""
    body = json.dumps({"request_id": "rid-9", "response": "nope"}).encode()
    with pytest.raises(ResponseDecodeError) as info:
        parse_page(SmsRecord, 200, {}, body)
    assert info.value.request_id == "rid-9"
    assert not info.value.retryable


def test_lone_surrogate_in_a_record_is_still_parsed() -> None:
    """Valid JSON the fast parser refuses (half an emoji) is read by the standard one."""
    body = _page([{"sid": "a1", "number": "1", "message": "PLACEHOLDER"}])
    body = body.replace(b"PLACEHOLDER", b"cut \\ud83d")
    assert parse_page(SmsRecord, 200, {}, body).records[0].message == "cut \ud83d"


def test_deeply_nested_body_is_a_decode_error() -> None:
    """A body that would blow the parser's stack is a ResponseDecodeError, not a crash."""
    with pytest.raises(ResponseDecodeError):
        parse_page(SmsRecord, 200, {}, b"[" * 100_000)


def _nested(depth: int) -> bytes:
    """A page whose one record has an unknown field of lists ``depth`` levels deep."""
    body = _page([{"sid": "deep-1", "number": "1", "junk": "PLACEHOLDER"}])
    return body.replace(b'"PLACEHOLDER"', b"[" * depth + b"]" * depth)


def test_unknown_field_nested_too_deep_is_a_decode_error_naming_the_offset() -> None:
    """Nesting past MAX_NESTING fails the page naming the item's offset, and is not retried."""
    with pytest.raises(ResponseDecodeError, match=r"item at offset 0 .*'junk'") as info:
        parse_page(SmsRecord, 200, {}, _nested(MAX_NESTING + 1))
    assert not info.value.retryable


@attrs.frozen
class _Contact:
    """A record class whose first field is personal."""

    number: str
    extra: Mapping[str, Any] = attrs.field(factory=dict)


def test_unknown_field_nested_too_deep_does_not_quote_the_record() -> None:
    """A record class whose first field is a phone number never puts it in the error."""
    body = _page([{"number": "+917967462685", "junk": "PLACEHOLDER"}])
    body = body.replace(b'"PLACEHOLDER"', b"[" * (MAX_NESTING + 1) + b"]" * (MAX_NESTING + 1))
    with pytest.raises(ResponseDecodeError) as info:
        parse_page(_Contact, 200, {}, body)
    assert "7967462685" not in str(info.value)


def test_unknown_field_nested_too_deep_after_a_failed_item_names_its_own_offset() -> None:
    """The offset named counts the failed items before the record."""
    body = json.loads(_nested(MAX_NESTING + 1))
    body["response"].insert(0, {"code": 500, "status": "failure", "error_data": None})
    body["metadata"]["offset"] = 40
    with pytest.raises(ResponseDecodeError, match=r"item at offset 41 "):
        parse_page(SmsRecord, 200, {}, json.dumps(body).encode())


def test_unknown_field_nested_up_to_the_limit_is_kept() -> None:
    """Nesting of MAX_NESTING levels is still an ordinary unknown field."""
    record = parse_page(SmsRecord, 200, {}, _nested(MAX_NESTING)).records[0]
    assert "junk" in record.extra


def test_body_nested_past_the_parsers_limit_is_not_retryable() -> None:
    """The standard parser's RecursionError is the body's fault: asking again cannot help."""
    with pytest.raises(ResponseDecodeError) as info:
        parse_page(SmsRecord, 200, {}, b"[" * 100_000)
    assert not info.value.retryable


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (429, RateLimitError),
        (500, ServerError),
        (503, ServerError),
        (402, APIError),
        (409, APIError),
    ],
)
def test_status_maps_to_error_class(status: int, cls: type[APIError]) -> None:
    """Each documented status raises its own class of the tree."""
    error = error_from_response(status, {}, b"")
    assert type(error) is cls
    assert error.status_code == status


def test_v2_error_envelope_gives_code_request_id_and_description() -> None:
    """The v2 error object fills every attribute of APIError."""
    with pytest.raises(AuthenticationError) as info:
        parse_page(SmsRecord, 401, {}, sample("error_401_v2.json"))
    error = info.value
    assert (error.error_code, error.description) == (1010, "Authorization failed")
    assert error.request_id == "c6087d6c0b764ac7a4de3d4a4c25e5f7"
    assert "request id c6087d6c0b764ac7a4de3d4a4c25e5f7" in str(error)


def test_v2_error_envelope_as_one_item_list_is_understood() -> None:
    """``response`` may be a one-item list in error envelopes too."""
    error = error_from_response(404, {}, sample("error_404_list.json"))
    assert isinstance(error, NotFoundError)
    assert (error.error_code, error.description) == (1000, "Campaign not found")


def test_v1_rest_exception_envelope_is_understood() -> None:
    """A 429 in the v1 RestException shape keeps its message and code."""
    error = error_from_response(429, {"Retry-After": "3"}, sample("error_429_v1.json"))
    assert isinstance(error, RateLimitError)
    assert (str(error.args[0]), error.error_code, error.retry_after) == (
        "Too many requests",
        "20029",
        3.0,
    )


def test_html_body_from_a_proxy_gives_server_error_with_excerpt() -> None:
    """A proxy's HTML page still maps by status, with the start of the page in the text."""
    error = error_from_response(502, {}, sample("error_502_proxy.html"))
    assert isinstance(error, ServerError)
    assert "502 Bad Gateway" in str(error)


def test_retry_after_is_read_on_503_too() -> None:
    """Exotel's SMS throttling answers 503; its ``Retry-After`` is kept as well."""
    assert error_from_response(503, {"Retry-After": "4"}, b"").retry_after == 4.0


def test_empty_error_body_maps_by_status() -> None:
    """An empty body is enough to raise the right class."""
    assert isinstance(error_from_response(503, {}, b""), ServerError)


def test_retry_after_in_seconds() -> None:
    """``Retry-After: 7`` means seven seconds."""
    assert parse_retry_after("7") == 7.0


def test_retry_after_as_http_date() -> None:
    """``Retry-After`` as an HTTP date is the time until then."""
    now = datetime(2026, 1, 1, 0, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:30 GMT", now=now) == 30.0


@pytest.mark.parametrize("value", [None, "", "soon", "nan", "inf"])
def test_retry_after_unusable_is_none(value: str | None) -> None:
    """A missing or unreadable ``Retry-After`` gives no advice."""
    assert parse_retry_after(value) is None


def test_request_path_default_form_and_query() -> None:
    """The default path form is the product page's, with filters in the query."""
    request = sms_details_request(
        "acc", "camp1", number="+919876543210", sort_by="schedule_time:desc"
    ).at(100, 50)
    assert request.path == "/v2/accounts/acc/sms-campaigns/camp1/sms-details"
    assert dict(request.params) == {
        "offset": "100",
        "limit": "50",
        "number": "+919876543210",
        "sort_by": "schedule_time:desc",
    }


def test_request_path_message_campaigns_form_sends_channel() -> None:
    """The newer message-campaigns form needs ``channel=sms``."""
    request = sms_details_request("acc", "camp1", path_form=PathForm.MESSAGE_CAMPAIGNS)
    assert request.path == "/v2/accounts/acc/message-campaigns/camp1/message-details"
    assert ("channel", "sms") in request.params


@pytest.mark.parametrize(
    ("form", "query"),
    [
        (PathForm.SMS_CAMPAIGNS, (("status", "completed"),)),
        (PathForm.MESSAGE_CAMPAIGNS, (("channel", "sms"), ("status", "completed"))),
    ],
)
def test_path_form_gives_every_request_its_query(
    form: PathForm, query: tuple[tuple[str, str], ...]
) -> None:
    """A request builder gets ``channel=sms`` where the form needs it, then its set filters."""
    assert form.query(status="completed", name=None) == query


def test_sms_details_request_marks_the_number_personal() -> None:
    """The number filter is declared personal, so that logs mask it."""
    assert sms_details_request("acc", "c1", number="+919876543210").personal == {"number"}


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "a b", "c1?x=1", "x" * 129, "é"])
def test_campaign_id_outside_safe_characters_is_refused(bad: str) -> None:
    """Anything that could escape the URL path segment is a ValueError."""
    with pytest.raises(ValueError, match="campaign_id"):
        check_path_segment("campaign_id", bad)


def test_campaign_id_not_a_string_is_a_type_error() -> None:
    """A campaign id must be text."""
    with pytest.raises(TypeError, match="campaign_id"):
        check_path_segment("campaign_id", 123)


@pytest.mark.parametrize("bad", [True, 1.0, "3"])
def test_int_check_refuses_bools_floats_and_strings(bad: object) -> None:
    """Booleans are not integers here, nor are floats or strings."""
    with pytest.raises(TypeError, match="limit"):
        check_int("limit", bad, minimum=1)


@pytest.mark.parametrize("bad", ["98765-43210", "phone", "+", "12"])
def test_number_filter_must_be_a_phone_number(bad: str) -> None:
    """Only digits with an optional leading + are a phone number."""
    with pytest.raises(ValueError, match="number"):
        check_number(bad)


@pytest.mark.parametrize("bad", ["schedule_time", "schedule_time:up", "date_created:ASC;drop"])
def test_sort_by_must_be_field_and_direction(bad: str) -> None:
    """``sort_by`` is ``field:asc`` or ``field:desc``."""
    with pytest.raises(ValueError, match="sort_by"):
        check_sort_by(bad)


def test_mask_number_keeps_last_two_digits() -> None:
    """Logs see only the last two digits of a phone number."""
    assert mask_number("+919876543210") == "***********10"


def _page(items: list[dict[str, object]], *, offset: int = 0) -> bytes:
    """A well-formed success envelope around ``items``."""
    return json.dumps(
        {
            "request_id": "r1",
            "method": "GET",
            "http_code": 200,
            "metadata": {"count": len(items), "offset": offset, "total": 99, "limit": 50},
            "response": [
                {"code": 200, "error_data": None, "status": "success", "data": d} for d in items
            ],
        }
    ).encode()


@pytest.mark.parametrize(
    ("status", "cls", "throttled"),
    [(429, RateLimitError, True), (503, ServerError, True), (502, ServerError, False)],
)
def test_error_says_whether_it_is_a_throttle(
    status: int, cls: type[APIError], throttled: bool
) -> None:
    """A 429 and a 503 both say "slow down", whatever class their status gives them."""
    error = error_from_response(status, {}, b"")
    assert type(error) is cls
    assert error.throttled is throttled


@attrs.frozen
class _Campaign:
    """A single-object endpoint's record class."""

    sid: str
    name: str | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict)


def _one(response: object) -> bytes:
    return json.dumps({"request_id": "r1", "http_code": 200, "response": response}).encode()


@pytest.mark.parametrize(
    "response",
    [
        {"code": 200, "status": "success", "data": {"sid": "c1", "name": "n", "x": 1}},
        [{"code": 200, "status": "success", "data": {"sid": "c1", "name": "n", "x": 1}}],
        {"sid": "c1", "name": "n", "x": 1},
    ],
    ids=["item", "one-item-list", "bare-object"],
)
def test_parse_item_reads_each_documented_shape(response: object) -> None:
    """One object as an item, a one-item list or bare gives the record, unknown keys kept."""
    assert parse_item(_Campaign, 200, {}, _one(response)) == _Campaign("c1", "n", {"x": 1})


def test_parse_item_raises_the_typed_error_of_an_error_status() -> None:
    """A 404 for one object is a NotFoundError, as for a page."""
    with pytest.raises(NotFoundError):
        parse_item(_Campaign, 404, {}, sample("error_404_list.json"))


def test_parse_item_raises_the_error_envelope_behind_a_200() -> None:
    """An http_code of 429 inside a 200 body is a RateLimitError."""
    body = json.dumps({"http_code": 429, "response": None}).encode()
    with pytest.raises(RateLimitError):
        parse_item(_Campaign, 200, {}, body)


def test_parse_item_raises_a_failed_object_as_its_status_error() -> None:
    """A ``response`` object whose status is failure is the error envelope its code names."""
    body = _one({"code": 404, "status": "failure", "error_data": {"message": "gone"}})
    with pytest.raises(NotFoundError, match="gone"):
        parse_item(_Campaign, 200, {}, body)


def test_parse_item_raises_a_failed_item_in_a_list_as_item_error() -> None:
    """A one-item list whose item failed raises that ItemError, not a record."""
    body = _one([{"code": 500, "status": "failure", "error_data": {"message": "boom"}}])
    with pytest.raises(ItemError, match="boom"):
        parse_item(_Campaign, 200, {}, body)


@pytest.mark.parametrize("response", [None, [], "c1", [{"sid": "a"}, {"sid": "b"}]])
def test_parse_item_refuses_a_response_that_is_not_one_object(response: object) -> None:
    """No object, or several, is a ResponseDecodeError."""
    with pytest.raises(ResponseDecodeError, match="'response' object"):
        parse_item(_Campaign, 200, {}, _one(response))


def test_parse_item_bounds_the_nesting_of_unknown_fields() -> None:
    """An unknown field nested past MAX_NESTING fails, as it does in a page."""
    deep = json.loads("[" * (MAX_NESTING + 1) + "]" * (MAX_NESTING + 1))
    with pytest.raises(ResponseDecodeError, match="nests deeper"):
        parse_item(_Campaign, 200, {}, _one({"sid": "c1", "junk": deep}))


def test_parse_item_of_an_object_that_is_not_a_record_names_the_field() -> None:
    """A bad object is a ResponseDecodeError naming what is wrong with it."""
    with pytest.raises(ResponseDecodeError, match="number"):
        parse_item(SmsRecord, 200, {}, _one({"status": "success", "data": {"sid": "a1"}}))
