"""Billing endpoints under ``/api/v1/billing``: the provider's books and the customer's copy.

Sessions, authentication, error mapping and the route table are those of `web.api` (its
`Api.wrap` and `Route` are reused, not copied), so a billing request is authenticated and its
errors look exactly like any other admin-API request. Permission checks are in
`accounts.policy` through `billing.ledger.BillingService`: provider operators list, issue,
download, record payments, cancel with credit notes and record outages; a contract's admin
lists and downloads its own contract's invoices; any other contract's invoice is a 404.

Issuing here does not send e-mail (sending blocks, and the server's event loop must not):
``outbound-pro billing run`` sends every notice still pending, including those of invoices
issued through this API.

Wiring (app.py): ``create_app(metrics, [make_setup(api), make_billing_setup(api, billing)])``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

import msgspec
from aiohttp import web

from outbound_pro.accounts.errors import InvalidInput
from outbound_pro.accounts.models import Role
from outbound_pro.billing.errors import BillingError
from outbound_pro.billing.ledger import BillingService, InvoiceStatus, OutageRecorded
from outbound_pro.billing.model import AwareDatetime, Invoice, Outage
from outbound_pro.billing.months import BillingMonth
from outbound_pro.billing.render import to_csv, to_html
from outbound_pro.web.api import PREFIX, Api, ApiServices, Ctx, Route, _body, _json


class InvoiceSummary(msgspec.Struct):
    number: str
    kind: str
    contract_id: int
    month: str
    issue_date: dt.date
    due_date: dt.date
    total: int
    refers_to: str | None


class IssueRequest(msgspec.Struct, forbid_unknown_fields=True):
    month: str
    issue_date: dt.date
    contract_id: int | None = None


class IssuedItem(msgspec.Struct):
    contract_id: int
    number: str | None
    created: bool
    total: int | None
    error: str = ""


class PaymentRequest(msgspec.Struct, forbid_unknown_fields=True):
    date: dt.date
    amount: int


class CreditNoteRequest(msgspec.Struct, forbid_unknown_fields=True):
    reason: str
    issue_date: dt.date


class OutageRequest(msgspec.Struct, forbid_unknown_fields=True):
    contract_id: int
    recognised: AwareDatetime
    restored: AwareDatetime
    note: str = ""


def _month(text: str, field: str = "month") -> BillingMonth:
    try:
        return BillingMonth.parse(text)
    except ValueError as exc:
        raise InvalidInput(field, str(exc)) from None


def _summary(stored: Any) -> InvoiceSummary:
    invoice: Invoice = stored.invoice
    return InvoiceSummary(
        invoice.number,
        invoice.kind,
        stored.contract_id,
        invoice.month,
        invoice.issue_date,
        stored.due_date,
        invoice.total,
        invoice.refers_to,
    )


class BillingApi:
    """Handlers over one `BillingService`, wrapped by the admin API's `Api.wrap`."""

    def __init__(self, api: Api, billing: BillingService) -> None:
        self.api = api
        self.billing = billing

    async def list_invoices(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        query = request.query
        contract_id: int | None = None
        if "contract_id" in query:
            if not query["contract_id"].isdigit():
                raise InvalidInput("contract_id", "give the contract's numeric id")
            contract_id = int(query["contract_id"])
        elif ctx.principal.role is not Role.OPERATOR:
            contract_id = ctx.contract_id()
        month = _month(query["month"]) if "month" in query else None
        stored = self.billing.invoices(ctx.actor, contract_id, month)
        return _json([_summary(s) for s in stored])

    async def issue(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        body = await _body(request, IssueRequest)
        month = _month(body.month)
        if body.contract_id is None:
            contracts = [c.id for c in self.billing.in_service(ctx.actor, month)]
        else:
            contracts = [body.contract_id]
        items = []
        for contract_id in contracts:
            try:
                issued = self.billing.issue(
                    ctx.actor, contract_id, month, issue_date=body.issue_date
                )
            except BillingError as exc:
                if body.contract_id is not None:
                    raise InvalidInput("month", str(exc)) from exc
                items.append(IssuedItem(contract_id, None, False, None, str(exc)))
                continue
            stored = issued.stored
            items.append(
                IssuedItem(contract_id, stored.number, issued.created, stored.invoice.total)
            )
        return _json(items)

    async def download(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        stored = self.billing.invoice(ctx.actor, request.match_info["number"])
        fmt = request.query.get("format", "json")
        name = stored.number
        if fmt == "json":
            return _json(stored.invoice)
        if fmt == "html":
            return web.Response(
                text=to_html(stored.invoice),
                content_type="text/html",
                charset="utf-8",
                headers={
                    "Content-Disposition": f'inline; filename="{name}.html"',
                    "X-Content-Type-Options": "nosniff",
                    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
                },
            )
        if fmt == "csv":
            return web.Response(
                body=to_csv(stored.invoice).encode("utf-8-sig"),
                content_type="text/csv",
                charset="utf-8",
                headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
            )
        raise InvalidInput("format", f"{fmt!r} is not a format; use json, html or csv")

    async def status(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        as_of = None
        if "as_of" in request.query:
            try:
                as_of = dt.date.fromisoformat(request.query["as_of"])
            except ValueError:
                raise InvalidInput("as_of", "write the date as YYYY-MM-DD") from None
        return _json(self.billing.status(ctx.actor, request.match_info["number"], as_of=as_of))

    async def payment(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        number = request.match_info["number"]
        body = await _body(request, PaymentRequest)
        self.billing.record_payment(ctx.actor, number, paid_on=body.date, amount=body.amount)
        return _json(self.billing.status(ctx.actor, number, as_of=body.date))

    async def credit_note(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        body = await _body(request, CreditNoteRequest)
        stored = self.billing.cancel(
            ctx.actor,
            request.match_info["number"],
            reason=body.reason,
            issue_date=body.issue_date,
        )
        return _json(stored.invoice)

    async def outage(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        body = await _body(request, OutageRequest)
        outage = Outage(recognised=body.recognised, restored=body.restored, note=body.note)
        return _json(self.billing.record_outage(ctx.actor, body.contract_id, outage))

    async def openapi(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        return _json(self._openapi)

    def routes(self) -> list[Route]:
        op, both = "operator", "operator, admin (own contract)"
        return [
            Route(
                "GET",
                "/billing/invoices",
                self.list_invoices,
                "Issued invoices and credit notes (?contract_id=&month=YYYY-MM)",
                both,
                None,
                list[InvoiceSummary],
            ),
            Route(
                "POST",
                "/billing/issue",
                self.issue,
                "Issue a month's invoices (all contracts in service, or contract_id); "
                "already issued months are returned, not issued again",
                op,
                IssueRequest,
                list[IssuedItem],
            ),
            Route(
                "GET",
                "/billing/invoices/{number}",
                self.download,
                "One invoice: JSON, or ?format=html (printable) or ?format=csv",
                both,
                None,
                Invoice,
            ),
            Route(
                "GET",
                "/billing/invoices/{number}/status",
                self.status,
                "Paid, balance and Art. 18 late interest (?as_of=YYYY-MM-DD)",
                both,
                None,
                InvoiceStatus,
            ),
            Route(
                "POST",
                "/billing/invoices/{number}/payments",
                self.payment,
                "Record a payment received",
                op,
                PaymentRequest,
                InvoiceStatus,
            ),
            Route(
                "POST",
                "/billing/invoices/{number}/credit-note",
                self.credit_note,
                "Cancel an invoice with a credit note",
                op,
                CreditNoteRequest,
                Invoice,
            ),
            Route(
                "POST",
                "/billing/outages",
                self.outage,
                "Record an outage for the Art. 29 credit",
                op,
                OutageRequest,
                OutageRecorded,
            ),
            Route(
                "GET",
                "/billing/openapi.json",
                self.openapi,
                "This document",
                "anyone",
                None,
                None,
                auth=False,
            ),
        ]

    @staticmethod
    def _guarded(route: Route) -> Route:
        """The library's `BillingError` (input that cannot be billed) as a 400 naming the
        field the request got wrong, like every other bad input of the admin API."""
        field = {"/billing/issue": "month", "/billing/outages": "contract_id"}.get(
            route.path, "number"
        )
        handler = route.handler

        async def guarded(request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
            try:
                return await handler(request, ctx)
            except BillingError as exc:
                raise InvalidInput(field, str(exc)) from exc

        return dataclasses.replace(route, handler=guarded)

    def setup(self, app: web.Application) -> None:
        routes = [self._guarded(r) for r in self.routes()]
        self._openapi = self.api.build_openapi(routes)
        for route in routes:
            app.router.add_route(route.method, PREFIX + route.path, self.api.wrap(route))


def make_setup(services: ApiServices, billing: BillingService) -> Callable[[web.Application], None]:
    """The hook for ``web.app.create_app(registry, setups)``, beside ``web.api.make_setup``."""
    return BillingApi(Api(services), billing).setup
