"""Revoking a user with the CLI ends its bindings at once and later REGISTERs get 403."""

from __future__ import annotations

import pytest

from tests.conftest import ServerProcess
from tests.registrar_wire.conftest import DOMAIN, USERS, bindings, cli
from tests.registrar_wire.rawclient import RawRegisterClient


@pytest.mark.peer
def test_revoked_user_loses_bindings_and_gets_403(registrar_server: ServerProcess) -> None:
    server = ("127.0.0.1", registrar_server.sip_port)
    with RawRegisterClient("127.0.0.51", server, DOMAIN) as phone:
        assert phone.register("booth05", USERS["booth05"]).status == 200
        assert len(bindings(registrar_server, "booth05")) == 1

        cli(registrar_server, "user", "revoke", "--contract", DOMAIN, "booth05")

        assert bindings(registrar_server, "booth05") == []
        # The same phone with the same (once right) password: refused outright, not challenged.
        reply = phone.register("booth05", USERS["booth05"])
        assert reply.status == 403, reply.text
    assert bindings(registrar_server, "booth05") == []
    # Other users of the contract are untouched.
    with RawRegisterClient("127.0.0.52", server, DOMAIN) as other:
        assert other.register("booth04", USERS["booth04"]).status == 200
