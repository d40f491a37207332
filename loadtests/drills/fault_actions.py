"""The faults a drill injects into a FullStack; each returns the function that ends it."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

import asyncpg

from loadtests.drills.full_stack import FullStack
from loadtests.harness.app_processes import wait_ready

KILLED_APP = "green"


def kill_postgres(stack: FullStack) -> Callable[[], None]:
    stack.postgres.stop("immediate")  # SIGQUIT to the postmaster: no checkpoint, crash recovery on start
    return stack.postgres.start


def kill_broker(stack: FullStack) -> Callable[[], None]:
    stack.broker.process.send_signal(signal.SIGKILL)
    stack.broker.process.wait(timeout=10)
    return stack.broker.start


def kill_app(stack: FullStack) -> Callable[[], None]:
    process = stack.apps[KILLED_APP]
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)

    def restart() -> None:
        # Same port and dead-letter directory: the new process replays what the killed one dead-lettered.
        stack.apps[KILLED_APP] = stack.start_app(KILLED_APP)
        wait_ready(stack.ports[KILLED_APP], stack.apps[KILLED_APP])

    return restart


def slow_database(stack: FullStack) -> Callable[[], None]:
    """A session takes the readings table's strongest lock: every insert waits for it (until the
    app's statement timeout), like a long migration or a stuck vacuum full."""
    loop = asyncio.new_event_loop()
    dsn = stack.postgres.url.replace("postgresql+asyncpg://", "postgresql://")
    connection = loop.run_until_complete(asyncpg.connect(dsn))
    transaction = connection.transaction()
    loop.run_until_complete(transaction.start())
    loop.run_until_complete(connection.execute("LOCK TABLE readings IN ACCESS EXCLUSIVE MODE"))

    def release() -> None:
        try:
            loop.run_until_complete(transaction.rollback())
            loop.run_until_complete(connection.close())
        finally:
            loop.close()

    return release


def fail_over(stack: FullStack) -> Callable[[], None]:
    """The primary crashes and is fenced; at the fault's end the standby is promoted and the endpoint
    moves to it (the app is left alone: it must find the new primary by itself)."""
    stack.notes["stale_connections"] = stack.postgres.fail()
    return stack.postgres.promote


FAULTS: dict[str, Callable[[FullStack], Callable[[], None]]] = {
    "postgres": kill_postgres, "broker": kill_broker, "app": kill_app, "slow-db": slow_database,
    "failover": fail_over,
}
