"""Read one figure from a running server's /metrics (Prometheus text)."""

from __future__ import annotations

import urllib.request


def metric(http: str, name: str) -> float:
    """The value of the unlabelled metric `name` at `http`/metrics; AssertionError if it is not exported."""
    with urllib.request.urlopen(f"{http}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not exported")
