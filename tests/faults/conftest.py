"""The fault suite's guard: every case has a hard time limit, so a hang fails instead of
stalling CI. ``@pytest.mark.fault_timeout(s)`` sets a case's limit (default 60 s)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # fault_server.py

DEFAULT_LIMIT_S = 60.0


class CaseTimeout(Exception):
    """A fault case ran past its limit: the code under test hangs."""


@pytest.fixture(autouse=True)
def hard_timeout(request: pytest.FixtureRequest):
    marker = request.node.get_closest_marker("fault_timeout")
    limit = float(marker.args[0]) if marker else DEFAULT_LIMIT_S

    def expire(signum, frame):
        raise CaseTimeout(f"{request.node.name}: still running after {limit:g} s -- a hang")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield limit
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
