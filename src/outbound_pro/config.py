"""Configuration: TOML decoded into msgspec Structs.

Every setting has a default so ``outbound-pro serve`` starts with no file at all. Decoding
through msgspec means a typo'd or mistyped setting is an error naming the field, not a
silently ignored line.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import msgspec


class SipConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """SIP listeners and RFC 3261 timer bases (seconds)."""

    host: str = "0.0.0.0"
    udp_port: int = 5060
    tcp_port: int = 5060
    tls_port: int = 5061
    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    max_message_size: int = 65535
    max_headers: int = 256
    tcp_idle_timeout: float = 300.0
    server_header: str = "Outbound-Pro"


class TlsConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Certificate for SIP TLS (and later HTTPS). Empty paths mean a self-signed one is made."""

    cert_file: str = ""
    key_file: str = ""


class HttpConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    host: str = "0.0.0.0"
    port: int = 8080


class BillingConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The qualified-invoice issuer (Japan's invoice system): name and T + 13 digits."""

    issuer_name: str = ""
    registration_number: str = ""


class SmtpConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The ``[smtp]`` table (billing notices). ``host`` empty means no mail server is configured.

    ``starttls`` upgrades the connection before ``username``/``password`` are sent; a login
    without STARTTLS is refused unless the host is loopback, so a password never crosses a
    network in clear.
    """

    host: str = ""
    port: int = 25
    from_address: str = ""
    starttls: bool = False
    username: str = ""
    password: str = ""
    timeout: float = 30.0


class Config(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    data_dir: str = "data"
    admin_url: str = "https://localhost:8080/"
    log_level: str = "info"
    sip: SipConfig = SipConfig()
    tls: TlsConfig = TlsConfig()
    http: HttpConfig = HttpConfig()
    billing: BillingConfig = BillingConfig()
    smtp: SmtpConfig = SmtpConfig()

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def database_path(self) -> Path:
        return self.data_path / "outbound-pro.sqlite3"


class ConfigError(Exception):
    """A configuration file that cannot be used; the message says which field and why."""


def load_config(path: str | Path | None) -> Config:
    if path is None:
        return Config()
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return msgspec.convert(data, Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
