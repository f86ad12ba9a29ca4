"""pyVoIP registers with MD5 digest without qop (RFC 2069 style), re-registers, and a wrong
password is refused."""

from __future__ import annotations

import pytest
from pyVoIP.VoIP import PhoneStatus

from tests.conftest import ServerProcess, wait_for
from tests.peers.pyvoip import pyvoip_phone
from tests.registrar_wire.conftest import bindings, provision

pytestmark = pytest.mark.peer

# pyVoIP sends to its SIP domain, so this contract's domain is the server's address.
PYVOIP_CONTRACT = """
[[contract]]
name = "PyVoIP Corp"
email = "ops@pyvoip.example.jp"
domain = "127.0.0.1"
admin = { id = "admin", password = "admin-password-2" }

  [[contract.user]]
  id = "pv01"
  password = "secret-pv01-pass"

  [[contract.user]]
  id = "pv02"
  password = "secret-pv02-pass"
"""


@pytest.fixture(scope="module")
def pv_server(registrar_server: ServerProcess) -> ServerProcess:
    provision(registrar_server, PYVOIP_CONTRACT)
    return registrar_server


def test_registers_and_reregisters(pv_server: ServerProcess) -> None:
    with pyvoip_phone(
        "127.0.0.1", pv_server.sip_port, "pv01", "secret-pv01-pass", host="127.0.0.31"
    ) as phone:
        assert phone.status is PhoneStatus.REGISTERED
        first = wait_for(lambda: bindings(pv_server, "pv01"), 5, "pv01 binding")
        assert isinstance(first, list) and len(first) == 1
        assert first[0]["source_host"] == "127.0.0.31"
        assert first[0]["source_port"] == phone.sip_port
        assert str(first[0]["user_agent"]).startswith("pyVoIP")
        # pyVoIP's refresh (its timer calls the same method): a new single-use nonce, the same
        # contact refreshed rather than added.
        assert phone.reregister()
        assert phone.status is PhoneStatus.REGISTERED
        again = bindings(pv_server, "pv01")
        assert len(again) == 1
        assert again[0]["contact"] == first[0]["contact"]
        assert again[0]["updated_at"] > first[0]["updated_at"]
    # stop() un-registers (Expires: 0), which needs a fresh digest too.
    wait_for(lambda: bindings(pv_server, "pv01") == [], 5, "pv01 un-registered")


def test_wrong_password_is_refused(pv_server: ServerProcess) -> None:
    with pyvoip_phone(
        "127.0.0.1", pv_server.sip_port, "pv02", "not-the-password", host="127.0.0.32"
    ) as phone:
        # pyVoIP gives up after three refused attempts and reports FAILED.
        wait_for(lambda: phone.status is PhoneStatus.FAILED, 20, "pyVoIP to give up")
        assert phone.phone.sip.registerFailures >= 3
    assert bindings(pv_server, "pv02") == []
