"""The pytest plugin, exercised the way a user would: a test file run with ``pytester``."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""


def _plugin_args() -> list[str]:
    """Load the plugin explicitly unless the installed entry point already does."""
    installed = any(ep.name == "exotel_async" for ep in entry_points(group="pytest11"))
    return [] if installed else ["-p", "exotel_async.testing.plugin"]


def run(pytester: pytest.Pytester, source: str) -> pytest.RunResult:
    """Run ``source`` as a user's test module with the plugin enabled."""
    pytester.makeini(INI)
    pytester.makepyfile(test_user=source)
    return pytester.runpytest(*_plugin_args(), "--strict-markers", "-q")


def test_exotel_sandbox_fixture_is_a_running_sandbox(pytester: pytest.Pytester) -> None:
    """``exotel_sandbox`` serves the demo campaign to a plain aiohttp request."""
    result = run(
        pytester,
        """
import aiohttp

async def test_fetch(exotel_sandbox):
    sb = exotel_sandbox
    url = f"{sb.base_url}/v2/accounts/{sb.account_sid}/sms-campaigns/demo/sms-details"
    auth = {"Authorization": "Basic " + __import__("base64").b64encode(
        f"{sb.api_key}:{sb.api_token}".encode()).decode()}
    async with aiohttp.ClientSession() as http, http.get(url, headers=auth) as response:
        body = await response.json()
    assert body["metadata"]["total"] == 5000
    assert [item["data"] for item in body["response"]] == sb.records("demo", limit=20)
""",
    )
    result.assert_outcomes(passed=1)


def test_marker_configures_the_sandbox(pytester: pytest.Pytester) -> None:
    """``@pytest.mark.exotel_sandbox(...)`` passes campaigns, seed and max_limit through."""
    result = run(
        pytester,
        """
import pytest

@pytest.mark.exotel_sandbox(campaigns={"c1": 7}, seed=3, max_limit=10)
async def test_configured(exotel_sandbox):
    assert exotel_sandbox.campaigns == {"c1": 7}
    assert (exotel_sandbox.seed, exotel_sandbox.max_limit) == (3, 10)
""",
    )
    result.assert_outcomes(passed=1)


def test_marker_passes_faults(pytester: pytest.Pytester) -> None:
    """A Faults object given to the marker is the sandbox's faults."""
    result = run(
        pytester,
        """
import pytest
from exotel_async.testing import Faults

@pytest.mark.exotel_sandbox(faults=Faults(p_503=1.0))
async def test_faulty(exotel_sandbox):
    assert exotel_sandbox.faults.p_503 == 1.0
""",
    )
    result.assert_outcomes(passed=1)


def test_marker_on_a_class_applies_to_its_tests(pytester: pytest.Pytester) -> None:
    """The closest marker wins, so a class-level marker configures every method."""
    result = run(
        pytester,
        """
import pytest

@pytest.mark.exotel_sandbox(campaigns={"k": 1})
class TestGroup:
    async def test_one(self, exotel_sandbox):
        assert exotel_sandbox.campaigns == {"k": 1}

    @pytest.mark.exotel_sandbox(campaigns={"m": 2})
    async def test_two(self, exotel_sandbox):
        assert exotel_sandbox.campaigns == {"m": 2}
""",
    )
    result.assert_outcomes(passed=2)


def test_marker_rejects_positional_arguments(pytester: pytest.Pytester) -> None:
    """Positional marker arguments are an error, not silently ignored."""
    result = run(
        pytester,
        """
import pytest

@pytest.mark.exotel_sandbox({"c": 1})
async def test_positional(exotel_sandbox):
    pass
""",
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*keyword arguments only*"])


def test_each_test_gets_a_fresh_sandbox(pytester: pytest.Pytester) -> None:
    """Fault changes and counters do not leak from one test into the next."""
    result = run(
        pytester,
        """
async def test_first(exotel_sandbox):
    exotel_sandbox.faults.p_500 = 1.0
    exotel_sandbox.add_campaign("extra", 3)

async def test_second(exotel_sandbox):
    assert exotel_sandbox.faults.p_500 == 0.0
    assert exotel_sandbox.campaigns == {"demo": 5000}
""",
    )
    result.assert_outcomes(passed=2)


def test_marker_is_registered(pytester: pytest.Pytester) -> None:
    """``pytest --markers`` lists exotel_sandbox, so --strict-markers accepts it."""
    pytester.makeini(INI)
    result = pytester.runpytest(*_plugin_args(), "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.exotel_sandbox(**options)*"])


def test_exotel_client_fixture_talks_to_the_sandbox(pytester: pytest.Pytester) -> None:
    """``exotel_client`` is an open ExotelClient pointed at ``exotel_sandbox``."""
    result = run(
        pytester,
        """
async def test_page(exotel_client, exotel_sandbox):
    page = await exotel_client.sms_details_page("demo", offset=0, limit=20)
    assert page.metadata.total == 5000
    assert [r.sid for r in page.records] == [
        r["sid"] for r in exotel_sandbox.records("demo", limit=20)
    ]
""",
    )
    result.assert_outcomes(passed=1)
