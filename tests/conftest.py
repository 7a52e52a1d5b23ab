"""Fixtures shared by several test modules."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from joulemeter.meter.store.location import LEDGER_ENV, SPOOL_ENV, resolve

POSTGRES_URL_ENV = "JOULEMETER_TEST_POSTGRES_URL"


@pytest.fixture(autouse=True, scope="session")
def _private_joulemeter_data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep the tests' journals, verified-ledger list and default ledger out of the user's own
    data folder (a test that needs other values sets its own)."""
    home = tmp_path_factory.mktemp("joulemeter-data")
    with pytest.MonkeyPatch.context() as env:
        env.setenv(SPOOL_ENV, str(home / "spool"))
        env.setenv(LEDGER_ENV, str(home / "ledger.sqlite"))
        yield


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param(
            "postgres",
            marks=[
                pytest.mark.postgres,
                pytest.mark.skipif(
                    not os.environ.get(POSTGRES_URL_ENV),
                    reason=f"{POSTGRES_URL_ENV} is not set (eval \"$(bash .ci/postgres.sh)\")",
                ),
            ],
        ),
    ]
)
def ledger_location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A location for a new, empty ledger: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield str(tmp_path / "ledger.sqlite")
        return
    yield from _fresh_postgres_schema(os.environ[POSTGRES_URL_ENV])


def _fresh_postgres_schema(server_url: str) -> Iterator[str]:
    """A schema of its own for one test, reached through the URL's search_path; dropped after."""
    import sqlalchemy as sa

    admin = sa.create_engine(resolve(server_url).url, isolation_level="AUTOCOMMIT")
    name = f"joulemeter_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{name}"')
    try:
        url = sa.make_url(server_url).update_query_dict({"options": f"-csearch_path={name}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{name}" CASCADE')
        admin.dispose()


@pytest.fixture(autouse=True)
def _private_spool(tmp_path_factory, monkeypatch):
    """Spooled samples (and the record of verified ledgers) of a test go to a temp dir of its
    own, never the user's data dir, nor the test's tmp_path, whose files tests compare."""
    monkeypatch.setenv("JOULEMETER_SPOOL", str(tmp_path_factory.mktemp("spool")))
