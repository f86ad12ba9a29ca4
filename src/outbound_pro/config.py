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
    # the host this server names in Via, Contact and From/PAI toward the trunk (a NAT's public
    # address or a DNS name); empty: `host`, or 127.0.0.1 when that is a wildcard
    public_host: str = ""
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
    # SO_RCVBUF of the UDP socket, bytes (0: the kernel's default, 208 KiB on Linux). The queue
    # absorbs the event loop's pauses: at a few hundred calls/s the default holds only tens of
    # milliseconds of datagrams, and a dropped response becomes a timeout (benchmarks/README.md)
    udp_receive_buffer: int = 4 << 20


class TlsConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Certificate for SIP TLS (and later HTTPS). Empty paths mean a self-signed one is made."""

    cert_file: str = ""
    key_file: str = ""


class HttpConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Web consoles, API and SIP over WebSocket. Browsers grant the microphone only to a secure
    context, so the web phone needs HTTPS (WSS) anywhere but on localhost; 0 turns it off."""

    host: str = "0.0.0.0"
    port: int = 8080
    https_port: int = 8443


class BillingConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The qualified-invoice issuer (Japan's invoice system): name and T + 13 digits."""

    issuer_name: str = ""
    registration_number: str = ""


class RtpConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The RTP relay: where its ports come from and which address the SDP announces.

    ``public_host`` is the public address of this media server, for SIP phones and browsers
    alike: the relay's SDP names it, and the WebRTC gateway announces it in ICE candidates
    (next to its host ones) behind a 1:1 NAT such as a cloud VM's elastic IP — one NAT, one
    setting. Empty: ``[sip] public_host`` for both; the gateway then announces host
    candidates only if that is empty too. An IP address is best: a name is resolved once at
    start-up for ICE (docs/webphone.md).
    """

    host: str = "0.0.0.0"
    public_host: str = ""  # written in SDP; empty: [sip] public_host
    port_min: int = 20000
    port_max: int = 29999


class B2buaConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Call handling (see docs/b2bua.md)."""

    enabled: bool = True
    trunk_number_format: str = "national"  # national (0312345678) | e164 (+81312345678)
    allowed_special_numbers: list[str] = []  # 1XY codes sent to the trunk; default: none
    internal_calls: bool = True  # booth-to-booth calls inside a contract without the trunk
    ring_timeout: float = 90.0
    max_call_duration: float = 14400.0
    keepalive_interval: float = 60.0  # in-dialog OPTIONS to both legs; 0 = off
    passthrough_headers: list[str] = []  # copied from one leg's INVITE to the other's
    md5_challenge_first: bool = False  # for phones that only read the first challenge
    record: bool = True
    recordings_dir: str = ""  # empty: DATA_DIR/recordings
    retention_days: int = 180
    retention_days_extended: int = 360
    # admission control (docs/b2bua.md): new INVITEs get 503 + Retry-After beyond; 0 = off
    max_calls_in_setup: int = 1000
    overload_backlog: float = 0.7  # fullness of the SIP UDP receive queue (0..1)
    overload_retry_after: int = 5  # seconds


class RegistrarConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The ``[registrar]`` table: expiry bounds, flood limits, client quirks and keep-alives."""

    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600
    max_contacts: int = 10  # per AOR: a phone farm behind one ID is not a booth
    source_rate: float = 50.0  # REGISTERs per second from one address
    source_burst: float = 100.0
    global_rate: float = 5000.0
    global_burst: float = 10000.0
    # User-Agent prefixes of clients that fail on a challenge with an algorithm they do not
    # know instead of picking one they do: libre before 3.x (baresip 1.x) aborts the whole
    # registration with ENOSYS on `algorithm=SHA-256`, SIPp 3.6 reads only the first
    # WWW-Authenticate and refuses anything but MD5, and so do SIPVicious' tools
    # ("friendly-scanner"), which crash on it. They get the MD5 challenge alone; this gives
    # nothing away, since MD5 is offered to every client anyway, and it means a password
    # guesser is stopped by the throttle (tested with svcrack), not by its own parser bug.
    md5_only_agents: tuple[str, ...] = ("baresip", "sipp", "friendly-scanner")
    keepalive_interval: float = 30.0  # OPTIONS to every registered contact; 0 = off
    keepalive_max_misses: int = 3  # unanswered probes in a row before a binding is removed


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
    registrar: RegistrarConfig = RegistrarConfig()
    rtp: RtpConfig = RtpConfig()
    b2bua: B2buaConfig = B2buaConfig()

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
    if "public_host" in data.get("b2bua", {}):
        raise ConfigError(f"{path}: [b2bua] public_host has moved: write it as [sip] public_host")
    try:
        return msgspec.convert(data, Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
