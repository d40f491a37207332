"""`python -m loadtests.simulator`: run until the duration ends or Ctrl-C/SIGTERM (see the package docstring).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from loadtests.simulator.config import SimulatorConfig, parse_config
from loadtests.simulator.runner import Simulator

log = logging.getLogger("simulator")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def run_until_signal(config: SimulatorConfig) -> int:
    """Run with Ctrl-C/SIGTERM meaning "finish in-flight requests, spool the rest"; a second signal
    gets the default behaviour (immediate exit)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def request_stop(signum: signal.Signals) -> None:
        log.info("%s: finishing in-flight requests and spooling the rest (repeat to abort)", signum.name)
        stop.set()
        for stop_signal in STOP_SIGNALS:
            loop.remove_signal_handler(stop_signal)

    for stop_signal in STOP_SIGNALS:
        loop.add_signal_handler(stop_signal, request_stop, stop_signal)
    simulator = Simulator(config, stop)
    await simulator.run()
    return 1 if simulator.fatal_error else 0


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_config(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s simulator %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request would drown the summaries
    return asyncio.run(run_until_signal(config))


if __name__ == "__main__":
    sys.exit(main())
