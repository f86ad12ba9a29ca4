"""Run a pyVoIP (PyPI `pyVoIP` 1.6) phone in-process, on loopback, and stop it cleanly.

pyVoIP uses its *server* argument both as the SIP domain (To/From host, hence the digest realm)
and as the address it sends to, so the contract it registers to must have the server's IP as
its domain. It signs MD5 digests without qop, which the registrar accepts with single-use
nonces. `start()` registers synchronously and runs a receive thread and a re-register timer;
`stop()` cancels them (and un-registers), so tests must call it in a ``finally``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from pyVoIP.VoIP import PhoneStatus, VoIPPhone

from tests.conftest import free_port


@dataclass
class PyVoipPhone:
    phone: VoIPPhone
    host: str
    sip_port: int

    @property
    def status(self) -> PhoneStatus:
        return self.phone.get_status()

    def reregister(self) -> bool:
        """Send one more REGISTER now, as pyVoIP's own refresh timer does.

        pyVoIP's `register()` arms a new refresh timer without cancelling the pending one, and
        `stop()` cancels only the newest: a forgotten timer would fire a minute later and keep
        the interpreter alive, so the pending one is cancelled first.
        """
        pending = self.phone.sip.registerThread
        if pending is not None:
            pending.cancel()
        return bool(self.phone.sip.register())


@contextlib.contextmanager
def pyvoip_phone(
    server_host: str,
    server_port: int,
    username: str,
    password: str,
    *,
    host: str = "127.0.0.1",
    expires: int = 60,
) -> Iterator[PyVoipPhone]:
    """A started phone bound to *host* on free ports; stopped on exit whatever happened."""
    sip_port = free_port()
    rtp_low = free_port()
    phone = VoIPPhone(
        server_host,
        server_port,
        username,
        password,
        myIP=host,
        sipPort=sip_port,
        rtpPortLow=rtp_low,
        rtpPortHigh=rtp_low + 10,
    )
    phone.sip.default_expires = expires
    phone.sip.register_timeout = 5
    try:
        phone.start()
        yield PyVoipPhone(phone, host, sip_port)
    finally:
        with contextlib.suppress(Exception):
            phone.stop()
