"""One log line per outage, not a traceback per vote: the store's failures and recovery, as news."""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


class Outage:
    """Tracks one dependency (the vote store): `failed` logs the first failure, `ok` logs the recovery."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.since: float | None = None  # when the current outage began (monotonic seconds), None while up
        self.failures = 0  # calls that failed during outages, in all
        self.outages = 0  # outages begun

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, error: BaseException) -> None:
        self.failures += 1
        if self.since is None:
            self.since = time.monotonic()
            self.outages += 1
            log.error("%s is unavailable (%s); refusing what needs it until it is back", self.name, error)

    def ok(self) -> None:
        if self.since is not None:
            log.warning(
                "%s is back after %.1f s (%d calls refused)", self.name, time.monotonic() - self.since, self.failures
            )
            self.since = None
