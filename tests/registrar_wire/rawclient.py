"""A tiny blocking UDP REGISTER client with MD5 digest (qop=auth), bound to a chosen source.

The SIPVicious and revocation tests need to see exactly what one source address gets back
(a 200, a 401, a 403, a 503, or nothing at all), which a full phone hides behind its retry
logic. Any 127.0.0.0/8 address works as a source on Linux loopback.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import socket
from dataclasses import dataclass


@dataclass
class Reply:
    status: int | None  # None: the registrar sent nothing (dropped)
    text: str


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


class RawRegisterClient:
    def __init__(self, source_host: str, server: tuple[str, int], domain: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((source_host, 0))
        self.local = self.sock.getsockname()
        self.server = server
        self.domain = domain
        self.call_id = f"{secrets.token_hex(8)}@{source_host}"
        self.cseq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawRegisterClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, user: str, expires: int, authorization: str | None) -> bytes:
        self.cseq += 1
        host, port = self.local
        lines = [
            f"REGISTER sip:{self.domain} SIP/2.0",
            f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{secrets.token_hex(8)};rport",
            "Max-Forwards: 70",
            f"From: <sip:{user}@{self.domain}>;tag={secrets.token_hex(4)}",
            f"To: <sip:{user}@{self.domain}>",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} REGISTER",
            f"Contact: <sip:{user}@{host}:{port}>",
            f"Expires: {expires}",
            "User-Agent: raw-test-client",
        ]
        if authorization:
            lines.append(f"Authorization: {authorization}")
        return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()

    def _exchange(self, data: bytes, timeout: float) -> Reply:
        self.sock.settimeout(timeout)
        self.sock.sendto(data, self.server)
        try:
            raw, _ = self.sock.recvfrom(65535)
        except TimeoutError:
            return Reply(None, "")
        text = raw.decode(errors="replace")
        return Reply(int(text.split(" ", 2)[1]), text)

    def register(
        self, user: str, password: str, *, expires: int = 300, timeout: float = 1.0
    ) -> Reply:
        """REGISTER, answer the MD5 challenge, return the final reply (or the first one when it
        is not a 401)."""
        first = self._exchange(self._request(user, expires, None), timeout)
        if first.status != 401:
            return first
        challenge = next(
            line
            for line in first.text.split("\r\n")
            if line.lower().startswith("www-authenticate:") and "algorithm=MD5" in line
        )
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge.split(":", 1)[1]))
        uri = f"sip:{self.domain}"
        cnonce = secrets.token_hex(8)
        ha1 = _md5(f"{user}:{params['realm']}:{password}")
        ha2 = _md5(f"REGISTER:{uri}")
        response = _md5(f"{ha1}:{params['nonce']}:00000001:{cnonce}:auth:{ha2}")
        authorization = (
            f'Digest username="{user}", realm="{params["realm"]}", nonce="{params["nonce"]}",'
            f' uri="{uri}", response="{response}", algorithm=MD5, qop=auth, nc=00000001,'
            f' cnonce="{cnonce}", opaque="{params["opaque"]}"'
        )
        return self._exchange(self._request(user, expires, authorization), timeout)
