"""How the processes' log lines look: one line per event, readable in the journal.

Under systemd (``JOURNAL_STREAM`` set: stderr goes to journald) each line starts with the
kernel-style priority prefix (``<4>`` for a warning) that journald turns into the entry's
PRIORITY, so ``journalctl -p warning -u art2mus-engine`` shows exactly the warnings and errors,
and no timestamp (journald adds its own). Elsewhere lines carry a timestamp and the level.
A traceback belongs only to a bug: expected faults are logged in one line by their handlers.
"""

from __future__ import annotations

import logging
import os
import sys

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# logging level -> syslog priority (sd-daemon(3) prefixes)
_PRIORITIES = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


class JournalFormatter(logging.Formatter):
    """``<priority>logger: message``; a traceback's lines each get the same prefix so that
    journald keeps them with their entry's priority."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{_PRIORITIES.get(record.levelno, 6 if record.levelno < logging.WARNING else 3)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def under_journald() -> bool:
    """True when stderr is connected to journald (systemd sets JOURNAL_STREAM to its device:inode)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    if not stream:
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return stream == f"{st.st_dev}:{st.st_ino}"


def configure(level: int) -> None:
    """Set up the root logger for a command: journald's format under systemd, else plain."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JournalFormatter() if under_journald() else logging.Formatter(PLAIN_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
