"""Schemathesis over every operation of the app's own OpenAPI document, in-process, with every check.

The app is built at import (``create_app`` does no I/O) so that ``@schema.parametrize()`` can make one test per
operation; its lifespan is started by schemathesis' ASGI client on the first request and stopped at the end of
the module. (``schemathesis.pytest.from_fixture`` would avoid the import-time app, but schemathesis 4.32.5's lazy
loader does not run under pytest 9.) The schema is the document the running app serves at /openapi.json: the first
test checks that.

Checks: every built-in one, with ``positive_data_acceptance`` replaced by a variant that lets a domain rule the
schema cannot state refuse valid-looking data (see ``st_checks``), plus a strict-JSON check. A fixed seed and
GENESIS_FUZZ_EXAMPLES examples per operation (10 by default, 500 under ``make fuzz``); rate limits are off.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.python import asgi as st_asgi
from schemathesis.specs.openapi.checks import positive_data_acceptance

from genesis.api.app import create_app
from tests.conftest import ADMIN_PASSWORD
from tests.reliability import st_checks
from tests.reliability.conftest import FUZZ_EXAMPLES, FUZZ_SEED, settings_for

pytestmark = pytest.mark.timeout(600)


def _scratch_dir() -> Path:
    # tmpfs when there is one: these tests check the contract, not durability, and fsyncs would dominate.
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and shm.stat().st_mode & 0o002 else Path(tempfile.gettempdir())
    return base / f"genesis-fuzz-{uuid.uuid4().hex[:12]}"


DATA_DIR = _scratch_dir()  # created by the app's lifespan, removed by _app_lifespan below
APP = create_app(settings_for(DATA_DIR, rate_limits_enabled=False, login_attempts_per_ip_per_minute=1_000_000,
                              login_failures_per_account_per_hour=100))
# The same configuration as `st run` in test_fuzz_live.py (e.g. 413 is a rejection of negative data).
CONFIG = schemathesis.Config.from_path(Path(__file__).with_name("schemathesis.toml"))
schema = schemathesis.openapi.from_dict(APP.openapi(), config=CONFIG)
schema.app = APP
schema.location = "/openapi.json"
schema.config.generation.update(max_examples=FUZZ_EXAMPLES, database="none")
schema.config.seed = FUZZ_SEED

load_all_checks()
CHECKS_RUN = [check for check in CHECKS.get_all() if check is not positive_data_acceptance]
assert st_checks.positive_data_acceptance_but_domain_rules in CHECKS_RUN
assert st_checks.strict_json_without_nan in CHECKS_RUN
_AUTH: dict[str, str] = {}


def admin_headers() -> dict[str, str]:
    """An admin bearer token, obtained through the app on first use (which starts its lifespan)."""
    if not _AUTH:
        with st_asgi.get_client(APP) as client:
            response = client.post("/token", data={"grant_type": "password", "username": "admin",
                                                   "password": ADMIN_PASSWORD})
            assert response.status_code == 200, response.text
            _AUTH["Authorization"] = f"Bearer {response.json()['access_token']}"
    return dict(_AUTH)


@pytest.fixture(scope="module", autouse=True)
def _app_lifespan() -> Iterator[None]:
    yield
    st_asgi.shutdown_lifespans()  # drains the audit writer and closes the database
    shutil.rmtree(DATA_DIR, ignore_errors=True)


def test_fuzz_schema_is_the_one_the_app_serves() -> None:
    with st_asgi.get_client(APP) as client:
        served = client.get("/openapi.json")
    assert served.status_code == 200
    assert served.json() == APP.openapi()
    operations = [op for op in schema.get_all_operations()]
    assert len(operations) == sum(len(methods) for methods in APP.openapi()["paths"].values())


@schema.parametrize()
def test_fuzz_every_operation_in_process(case: Any) -> None:
    case.call_and_validate(headers=admin_headers(), checks=CHECKS_RUN)


def test_fuzz_stateful_links_in_process() -> None:
    """Sequences of calls along the links schemathesis infers (POST /backtests -> GET /backtests/{id}, ...)."""
    headers = admin_headers()
    loaded = schemathesis.openapi.from_asgi("/openapi.json", APP, config=CONFIG)
    loaded.config.seed = FUZZ_SEED

    class Machine(loaded.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": headers}

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS_RUN, headers=headers, transport_kwargs=kwargs or None,
                                   recorder=self.recorder)

    # Capped: the app's state carries over between scenarios, and past a few dozen Hypothesis notices that rules
    # became available differently when replaying (FlakyStrategyDefinition). `st run`'s stateful phase, which
    # copes with that, covers longer runs (make fuzz).
    Machine.run(settings=hypothesis_settings(max_examples=min(10, max(5, FUZZ_EXAMPLES // 2)), stateful_step_count=6,
                                             deadline=None, database=None, derandomize=True))
