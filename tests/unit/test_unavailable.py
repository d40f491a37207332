"""Which database errors count as "unavailable right now" (503) and which stay bugs (500)."""

from __future__ import annotations

import asyncpg
import pytest
import sqlalchemy
import sqlalchemy.exc

from app.storage.unavailable import is_database_unavailable


def _real_sqlalchemy_error(statement: str) -> sqlalchemy.exc.DBAPIError:
    engine = sqlalchemy.create_engine("sqlite://")
    with pytest.raises(sqlalchemy.exc.DBAPIError) as raised, engine.connect() as connection:
        connection.execute(sqlalchemy.text(statement))
    return raised.value


def test_a_missing_table_is_a_bug_not_an_outage() -> None:
    assert is_database_unavailable(_real_sqlalchemy_error("SELECT * FROM no_such_table")) is False


@pytest.mark.parametrize("error", [ConnectionRefusedError(111, "refused"), TimeoutError(),
                                   asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout"),
                                   asyncpg.exceptions.CannotConnectNowError("the database system is starting up")])
def test_outages_and_timeouts_are_unavailable(error: BaseException) -> None:
    assert is_database_unavailable(error) is True


def test_a_programming_error_is_not_unavailable() -> None:
    assert is_database_unavailable(asyncpg.exceptions.UndefinedColumnError("column x does not exist")) is False
