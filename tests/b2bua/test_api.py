"""CDR query, CSV export and recordings search/download through the HTTP API, scoped by policy."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import urllib.error
import urllib.request
from pathlib import Path

from tests.b2bua.conftest import BOOTHS, B2buaServer, provision
from tests.b2bua.media_call import MediaPeer, start_talk_call, stream_both
from tests.b2bua.peers import BOOTH_IP, TRUNK_IP, start_sipp
from tests.conftest import wait_for

OTHER = """
[[contract]]
name = "Other Corp"
email = "ops@other.example.jp"
domain = "other.op.local"
admin = { id = "admin", password = "other-password-1" }
"""


def _talk(b2bua: B2buaServer, tmp: Path) -> None:
    """A call that carries RTP both ways for a second: it is recorded."""
    a, b = MediaPeer(BOOTH_IP, 440.0), MediaPeer(TRUNK_IP, 1000.0)
    try:
        booth, trunk, ports = start_talk_call(
            tmp, "talk", b2bua.target, b2bua.trunk_port, 1500, a, b
        )
        stream_both(a, b, ports, 1.0)
        for r in (booth.result(), trunk.result()):
            assert (r.successful, r.failed) == (1, 0), r.screen
    finally:
        a.close()
        b.close()


def _call(b2bua: B2buaServer, tmp: Path) -> None:
    """A call without RTP (SIPp sends none): no recording."""
    trunk = start_sipp(
        tmp, "trunk", "b2bua_trunk_answer_bye.xml", local_ip=TRUNK_IP, local_port=b2bua.trunk_port
    )
    booth = start_sipp(
        tmp,
        "booth",
        "b2bua_booth_call.xml",
        local_ip=BOOTH_IP,
        target=b2bua.target,
        users={"booth01": BOOTHS["booth01"][0]},
        extra=("-s", "0366667777"),
    )
    for r in (booth.result(), trunk.result()):
        assert (r.successful, r.failed) == (1, 0), r.screen


class Client:
    def __init__(self, port: int, login: str, password: str) -> None:
        self.base = f"http://127.0.0.1:{port}/api/v1"
        body = json.dumps({"login": login, "password": password}).encode()
        req = urllib.request.Request(
            f"{self.base}/login", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            self.token = json.loads(r.read())["token"]

    def get(
        self, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(
            self.base + path, headers={"Authorization": f"Bearer {self.token}", **(headers or {})}
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()


def test_cdrs_and_recordings_api(b2bua: B2buaServer, tmp_path: Path) -> None:
    _talk(b2bua, tmp_path)
    _call(b2bua, tmp_path)
    provision(b2bua.server, OTHER)
    port = b2bua.server.http_port
    admin = Client(port, "admin@b2b.op.local", "admin-password-1")

    def both_ended() -> list[dict[str, object]] | None:
        rows = json.loads(admin.get("/cdrs?direction=outbound")[2])
        return rows if len(rows) == 2 and all(r["end_at"] for r in rows) else None

    rows = wait_for(both_ended, 10, "both calls' final CDRs")
    assert all(r["booth"] == "booth01" and r["status"] == 200 for r in rows)
    silent, talked = rows  # newest first
    assert silent["hangup_by"] == "callee" and silent["recording_id"] is None
    assert talked["hangup_by"] == "caller" and talked["recording_id"]
    assert silent["setup_at"].endswith("+00:00")
    status, _, body = admin.get("/cdrs?direction=sideways")
    assert status == 400 and json.loads(body)["field"] == "direction"
    status, _, body = admin.get("/cdrs?booth=booth02")
    assert (status, json.loads(body)) == (200, [])

    status, headers, body = admin.get("/cdrs.csv?number=03-6666-7777")
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(body.decode())))
    assert table[0]["callee"] == "+81366667777" and table[0]["status"] == "200"

    status, _, body = admin.get("/recordings?min_duration=0&booth=booth01")
    recs = json.loads(body)
    assert status == 200 and len(recs) == 1 and recs[0]["state"] == "complete"  # talked only
    rid = recs[0]["id"]
    assert rid == talked["recording_id"] and recs[0]["call_ref"] == talked["call_ref"]
    status, headers, whole = admin.get(f"/recordings/{rid}/audio")
    assert status == 200 and whole[:4] == b"RIFF"
    assert hashlib.sha256(whole).hexdigest() == recs[0]["sha256"]
    status, headers, part = admin.get(f"/recordings/{rid}/audio", {"Range": "bytes=4-11"})
    assert status == 206 and part == whole[4:12]
    assert headers["Content-Range"] == f"bytes 4-11/{len(whole)}"

    # a booth sees its own calls; another contract sees nothing and gets 404s
    booth = Client(port, "booth01@b2b.op.local", BOOTHS["booth01"][0])
    status, _, body = booth.get("/cdrs")
    assert status == 200 and all(r["booth"] == "booth01" for r in json.loads(body))
    other_booth = Client(port, "booth02@b2b.op.local", BOOTHS["booth02"][0])
    assert json.loads(other_booth.get("/cdrs")[2]) == []
    other = Client(port, "admin@other.op.local", "other-password-1")
    assert json.loads(other.get("/cdrs")[2]) == []
    assert json.loads(other.get("/recordings")[2]) == []
    assert other.get(f"/recordings/{rid}")[0] == 404
    assert other.get(f"/recordings/{rid}/audio")[0] == 404
    assert admin.get("/recordings/999999")[0] == 404
