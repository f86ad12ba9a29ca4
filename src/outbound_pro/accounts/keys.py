"""Server secrets kept in the data directory (the digest nonce key).

The digest nonce HMAC key must survive restarts: otherwise every phone's next re-registration
after a restart fails once with a nonce we no longer recognise. It is created once with random
bytes, owner-readable only, written atomically so a crash never leaves a short key behind.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def load_or_create_key(path: str | Path, size: int = 32) -> bytes:
    """The key in *path*, creating it (mode 0600) on first use."""
    path = Path(path)
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        key = b""
    if len(key) >= size:
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, secrets.token_bytes(size))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path.read_bytes()
