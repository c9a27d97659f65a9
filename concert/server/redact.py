"""No secrets in logs: the DJ token and device tokens are cut out of every access-log line."""

from __future__ import annotations

import logging
import re

SECRET_PARAMS = ("token", "device")  # query parameters that carry credentials
_PATTERN = re.compile(r"(?i)\b(" + "|".join(SECRET_PARAMS) + r")=[^&\s\"']*")


def redact(text: str) -> str:
    """`text` with the value of every `token=` / `device=` query parameter replaced by `***`."""
    return _PATTERN.sub(lambda m: f"{m.group(1)}=***", text)


class RedactSecrets(logging.Filter):
    """A logging filter that redacts the message and its string arguments (uvicorn passes the path as one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def install(logger_names: tuple[str, ...] = ("uvicorn.access", "uvicorn.error")) -> None:
    """Attach one RedactSecrets to each named logger (idempotent)."""
    for name in logger_names:
        logger = logging.getLogger(name)
        for existing in logger.filters:
            if isinstance(existing, RedactSecrets):
                break
        else:
            logger.addFilter(RedactSecrets())
