"""No secrets in logs: the DJ token and device tokens never reach the server's log, unit and end to end."""

from __future__ import annotations

import json
import logging
import urllib.request
from pathlib import Path

import pytest
from websockets.sync.client import connect

from concert.server.redact import RedactSecrets, redact
from tests.support.server import serve


def test_redact_cuts_token_and_device_values_only() -> None:
    assert redact("GET /dj?token=s3cret&x=1 HTTP/1.1") == "GET /dj?token=***&x=1 HTTP/1.1"
    assert redact('"WebSocket /ws?device=abc.def-9" [accepted]') == '"WebSocket /ws?device=***" [accepted]'
    assert redact("/api/state?TOKEN=a&device=b") == "/api/state?TOKEN=***&device=***"
    assert redact("/listen?style=techno") == "/listen?style=techno"


def test_the_filter_redacts_message_and_arguments() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s "%s"', ("1.2.3.4", "/dj?token=x"), None)
    assert RedactSecrets().filter(record) and record.getMessage() == '1.2.3.4 "/dj?token=***"'


@pytest.mark.slow
def test_the_running_server_logs_no_token(tmp_path: Path) -> None:
    with serve("--dj-token", "sesame-open", log_dir=tmp_path) as s:
        with urllib.request.urlopen(f"{s.http}/dj?token=sesame-open", timeout=10) as r:
            assert r.status == 200
        with connect(s.ws) as ws:
            device = json.loads(ws.recv(timeout=10))["device"]
        with connect(f"{s.ws}?device={device}") as ws:
            ws.recv(timeout=10)
        log = s.output()
    access = [line for line in log.splitlines() if '"GET ' in line or "WebSocket" in line]
    assert any("/dj?token=***" in line for line in access)  # the request was logged, its secret was not
    assert any("device=***" in line for line in access)
    assert not [line for line in access if "sesame-open" in line or device in line]
    # (the console URL with its token is printed once at start, for the operator's terminal)
