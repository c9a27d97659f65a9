"""A real Icecast 2 (Debian's `icecast2`) on a free port, for the push tests: start, kill, start again."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO

from tests.support.server import free_port

SOURCE_PASSWORD = "hackme-source"
WEB = Path("/usr/share/icecast2")

CONFIG = """<icecast>
  <location>test</location><admin>test@localhost</admin>
  <limits><clients>20</clients><sources>4</sources><queue-size>524288</queue-size>
    <client-timeout>30</client-timeout><header-timeout>15</header-timeout><source-timeout>10</source-timeout>
    <burst-size>65535</burst-size></limits>
  <authentication><source-password>{password}</source-password><admin-user>admin</admin-user>
    <admin-password>admin-{password}</admin-password></authentication>
  <hostname>127.0.0.1</hostname>
  <listen-socket><port>{port}</port><bind-address>127.0.0.1</bind-address></listen-socket>
  <fileserve>1</fileserve>
  <paths><basedir>{web}</basedir><logdir>{logs}</logdir><webroot>{web}/web</webroot>
    <adminroot>{web}/admin</adminroot><pidfile>{logs}/icecast.pid</pidfile></paths>
  <logging><accesslog>access.log</accesslog><errorlog>error.log</errorlog><loglevel>3</loglevel></logging>
  <security><chroot>0</chroot>{owner}</security>
</icecast>
"""


def icecast_binary() -> str | None:
    return shutil.which("icecast2") or shutil.which("icecast")


class Icecast:
    """One icecast2 process on `port`, configured in `home`; `start` again after `kill` on the same port."""

    def __init__(self, home: Path) -> None:
        binary = icecast_binary()
        if binary is None:
            raise RuntimeError("icecast2 is not installed (bash .ci/setup installs it)")
        self.binary = binary
        self.port = free_port()
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        logs = home / "logs"
        owner = ""
        if os.geteuid() == 0:  # icecast will not run as root: it changes to nobody, who must reach and write its logs
            owner = "<changeowner><user>nobody</user><group>nogroup</group></changeowner>"
            logs = Path(tempfile.mkdtemp(prefix="concert-icecast-"))  # pytest's folders are root's alone
            logs.chmod(0o777)
        logs.mkdir(parents=True, exist_ok=True)
        self.logs = logs
        self.config = home / "icecast.xml"
        self.config.write_text(CONFIG.format(password=SOURCE_PASSWORD, port=self.port, web=WEB, logs=logs, owner=owner))
        self.proc: subprocess.Popen[bytes] | None = None
        self._out: BinaryIO | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def source_url(self, mount: str) -> str:
        return f"http://source:{SOURCE_PASSWORD}@127.0.0.1:{self.port}{mount}"

    def start(self, timeout: float = 20.0) -> None:
        self._out = (self.home / "stdout.log").open("ab")
        self.proc = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=self._out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # a readiness poll, not a timing assertion
            if self.proc.poll() is not None:
                raise RuntimeError(f"icecast2 exited at start: {(self.home / 'stdout.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.http}/status-json.xsl", timeout=2):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise RuntimeError("icecast2 did not answer in time")

    def mounts(self) -> set[str]:
        """Mount points with a source connected now."""
        with urllib.request.urlopen(f"{self.http}/status-json.xsl", timeout=5) as r:
            text = r.read().decode("utf-8", "replace")
        try:
            stats = json.loads(text).get("icestats", {})
        except ValueError:  # Icecast 2.4.4 writes broken JSON while no source is connected
            return set()
        sources = stats.get("source", [])
        if isinstance(sources, dict):
            sources = [sources]
        return {"/" + s["listenurl"].rsplit("/", 1)[1] for s in sources if "listenurl" in s}

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None
        if self._out is not None:
            self._out.close()
            self._out = None

    def remove(self) -> None:
        """Kill it and remove its logs where they were outside `home`."""
        self.kill()
        if not self.logs.is_relative_to(self.home):
            shutil.rmtree(self.logs, ignore_errors=True)
