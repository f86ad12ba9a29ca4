from __future__ import annotations

from pathlib import Path

from outbound_pro.accounts.keys import load_or_create_key


def test_key_is_created_once_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "digest.key"
    first = load_or_create_key(path)
    assert len(first) == 32
    assert path.stat().st_mode & 0o077 == 0
    assert load_or_create_key(path) == first
    path.write_bytes(b"short")  # a truncated key is replaced, never used
    assert len(load_or_create_key(path)) == 32
