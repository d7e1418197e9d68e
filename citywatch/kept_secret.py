"""A secret generated on first start and kept in the data folder (owner-only)."""

import logging
import os
import secrets
from pathlib import Path

log = logging.getLogger(__name__)


def kept_secret(path: Path) -> str:
    """The secret stored at ``path``, created (random, mode 0600) if there is none."""
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        value = ""
    if len(value) >= 16:
        return value
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    log.info("generated a stream-ticket secret in %s (kept for the next start)", path)
    return value
