"""One side of a call: a dialog (RFC 3261 §12) and the requests sent inside it.

Each leg of a call has its own Call-ID, tags and CSeq space; nothing here is shared between
the two legs of one call, which is what keeps headers of one side from leaking to the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from outbound_pro.sip.headers import NameAddr, parse_name_addr
from outbound_pro.sip.message import Request, Response, make_request
from outbound_pro.sip.stack import Destination


def untagged(addr: NameAddr) -> NameAddr:
    """*addr* without its tag parameter (the tag is dialog state, kept apart)."""
    return NameAddr(
        addr.uri_text, addr.display_name, {k: v for k, v in addr.params.items() if k != "tag"}
    )


@dataclass
class Dialog:
    """The state a UA keeps for one dialog, from either role.

    ``local_uri``/``remote_uri`` are name-addr texts without tags (what goes in From and To of
    requests we send); ``remote_target`` is the peer's Contact URI; ``destination`` is where
    packets go (the registered source address of a booth, the trunk's address), which is not
    necessarily the target's host behind NAT.
    """

    call_id: str
    local_tag: str
    local_uri: str
    remote_uri: str
    remote_target: str
    destination: Destination
    contact: str
    remote_tag: str | None = None
    local_cseq: int = 1
    remote_cseq: int = 0
    route_set: list[str] = field(default_factory=list)

    @property
    def confirmed(self) -> bool:
        return self.remote_tag is not None

    def request(
        self,
        method: str,
        via: str,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        cseq: int | None = None,
    ) -> Request:
        """A request in this dialog; takes the next local CSeq unless *cseq* is given (the ACK
        of a 2xx reuses its INVITE's number, §13.2.2.4)."""
        if cseq is None:
            self.local_cseq += 1
            cseq = self.local_cseq
        to = self.remote_uri + (f";tag={self.remote_tag}" if self.remote_tag else "")
        return make_request(
            method,
            self.remote_target,
            from_=f"{self.local_uri};tag={self.local_tag}",
            to=to,
            call_id=self.call_id,
            cseq=cseq,
            via=via,
            contact=self.contact if method in ("INVITE", "UPDATE") else None,
            route=self.route_set,
            headers=headers or [],
            body=body,
            content_type=content_type,
        )

    def confirm_uac(self, response: Response) -> None:
        """Take tag, target and route set from a 2xx (or 1xx with tag) to our INVITE (§12.1.2)."""
        self.remote_tag = response.to_tag
        contacts = response.contacts
        if contacts:
            self.remote_target = str(contacts[0].uri)
        self.route_set = list(reversed(response.headers.raw_values("record-route")))

    @classmethod
    def uas(
        cls, request: Request, *, local_tag: str, destination: Destination, contact: str
    ) -> Dialog:
        """The dialog an incoming INVITE creates on our side (§12.1.1)."""
        from_ = request.from_
        to = parse_name_addr(request.headers.raw_values("to")[0], "To")
        contacts = request.contacts
        target = str(contacts[0].uri) if contacts else str(from_.uri)
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            local_uri=str(untagged(to)),
            remote_uri=str(untagged(from_)),
            remote_target=target,
            destination=destination,
            contact=contact,
            remote_tag=from_.tag,
            local_cseq=0,
            remote_cseq=request.cseq[0],
            route_set=request.headers.raw_values("record-route"),
        )
