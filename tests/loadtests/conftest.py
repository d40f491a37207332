"""Locust's objects in the test process, without Locust's gevent monkey-patching.

Importing `locust` patches sockets, ssl and threads of the whole interpreter (and breaks ssl imported
earlier) unless LOCUST_SKIP_MONKEY_PATCH is set. The unit tests here only build Locust objects (stats
entries, an environment, a shape) and never run users, so they import it unpatched; the variable is
removed again at once so the Locust processes the tests start are patched as usual.
"""

from __future__ import annotations

import os

_previous = os.environ.get("LOCUST_SKIP_MONKEY_PATCH")
os.environ["LOCUST_SKIP_MONKEY_PATCH"] = "1"
try:
    import locust  # noqa: F401
finally:
    if _previous is None:
        del os.environ["LOCUST_SKIP_MONKEY_PATCH"]
    else:
        os.environ["LOCUST_SKIP_MONKEY_PATCH"] = _previous
