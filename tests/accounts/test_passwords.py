from __future__ import annotations

import hashlib

import pytest

from outbound_pro.accounts.passwords import (
    DEFAULT_PARAMS,
    PreparedPassword,
    burn_verify,
    check_password_strength,
    generate_password,
    ha1,
    hash_password,
    prepare_password,
    verify_password,
)
from tests.accounts.helpers import FAST


def test_default_scrypt_parameters_are_memory_hard() -> None:
    assert 128 * DEFAULT_PARAMS.n * DEFAULT_PARAMS.r >= 32 * 1024 * 1024
    encoded = hash_password("correct horse")
    assert encoded.startswith(f"scrypt${DEFAULT_PARAMS.n}$8$1$")
    assert verify_password("correct horse", encoded)
    assert not verify_password("correct hors", encoded)


def test_hashes_are_salted_and_carry_parameters() -> None:
    a, b = hash_password("pw-123456", FAST), hash_password("pw-123456", FAST)
    assert a != b
    assert verify_password("pw-123456", a) and verify_password("pw-123456", b)


@pytest.mark.parametrize("encoded", ["", "bcrypt$x", "scrypt$a$b$c$d$e", "scrypt$16$8$1$!!$!!"])
def test_malformed_hashes_do_not_verify(encoded: str) -> None:
    assert not verify_password("x", encoded)


def test_burn_verify_always_fails() -> None:
    assert burn_verify("anything", FAST) is False


def test_ha1_values() -> None:
    assert ha1("u", "r", "p", "SHA-256") == hashlib.sha256(b"u:r:p").hexdigest()
    assert ha1("u", "r", "p", "MD5") == hashlib.md5(b"u:r:p").hexdigest()
    assert ha1("u", "r", "p", "md5") == ha1("u", "r", "p", "MD5")
    with pytest.raises(ValueError):
        ha1("u", "r", "p", "SHA-1")


def test_generated_passwords_and_strength() -> None:
    pws = {generate_password() for _ in range(50)}
    assert len(pws) == 50 and all(len(p) == 16 for p in pws)
    assert not any(c in p for p in pws for c in "0O1lI")
    assert check_password_strength("short") is not None
    assert check_password_strength("x" * 300) is not None
    assert check_password_strength("long enough") is None


def test_prepared_password_never_shows_plain_in_repr() -> None:
    p = prepare_password("secret-value", FAST)
    assert isinstance(p, PreparedPassword) and not p.generated
    assert "secret-value" not in repr(p)
    g = prepare_password(None, FAST)
    assert g.generated and verify_password(g.plain, g.password_hash)
