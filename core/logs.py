"""Text log lines that cannot be forged: control characters in messages are escaped."""

from __future__ import annotations

import copy
import logging
import re

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_controls(text: str) -> str:
    """`text` with every control character (newline, carriage return, escape, ...) written as \\xNN or \\uNNNN."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class SafeTextFormatter(logging.Formatter):
    """A text formatter whose message is always one line: a client's "%0A" cannot start a new log line.

    Tracebacks keep their lines (they are the program's, not a client's).
    """

    def __init__(self, fmt: str = TEXT_FORMAT) -> None:
        super().__init__(fmt)

    def format(self, record: logging.LogRecord) -> str:
        safe = copy.copy(record)
        message = escape_controls(record.getMessage())
        rid = getattr(record, "request_id", "-")  # stamped by the service on records made during a request
        safe.msg = message if rid in ("-", None) else f"{message} [request_id={rid}]"
        safe.args = None
        return super().format(safe)


def use_safe_text_logs(names: tuple[str, ...] = ("", "uvicorn", "uvicorn.error", "uvicorn.access")) -> None:
    """Format every handler of the given loggers (default: the root and uvicorn's) with `SafeTextFormatter`."""
    for name in names:
        for handler in logging.getLogger(name).handlers:
            handler.setFormatter(SafeTextFormatter())
