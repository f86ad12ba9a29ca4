"""Renderings show the invoice's own numbers: JSON, text table, HTML page, CSV."""

from __future__ import annotations

import csv
import io
import json
from html.parser import HTMLParser

from outbound_pro.billing import Issuer, credit_note, from_json, to_csv, to_html, to_json, to_text

from .factories import d, full, invoice

ISSUER = Issuer(name="Example Telecom K.K.", registration_number="T1234567890123")


def test_json_has_the_issue_keys_and_round_trips():
    inv = invoice(full(), "2026-05", issuer=ISSUER)
    data = json.loads(to_json(inv))
    assert (data["subtotal"], data["tax"], data["total"]) == (98200, 9820, 108020)
    assert data["lines"][0] == {
        "code": "booth",
        "quantity": 5,
        "unit_price": 8000,
        "amount": 40000,
        "label_ja": "ブース利用料",
        "label_en": "Booth fee",
        "tax_rate": "0.10",
        "note": "",
    }
    assert data["issuer"] == {
        "name": "Example Telecom K.K.",
        "registration_number": "T1234567890123",
    }
    assert data["taxes"] == [{"rate": "0.10", "taxable_subtotal": 98200, "tax": 9820}]
    assert from_json(to_json(inv)) == inv


def test_text_table_lists_lines_and_totals():
    text = to_text(invoice(full(), "2026-05", issuer=ISSUER))
    assert "登録番号 Registration No.: T1234567890123" in text
    booth = next(row for row in text.splitlines() if row.startswith("booth "))
    assert booth.split()[-4:] == ["5", "8,000", "40,000", "10%"]
    assert text.splitlines()[-1].split()[-1] == "108,020"  # 合計 Total is the last line
    assert "(not configured" in to_text(invoice(full(), "2026-05"))


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.external: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.external.append(value)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_is_one_self_contained_page_with_qualified_invoice_fields():
    page = to_html(invoice(full(), "2026-05", issuer=ISSUER, issue_date=d("2026-06-01")))
    parser = _Collect()
    parser.feed(page)
    text = "".join(parser.text)
    assert parser.external == [] and "style" in parser.tags and "script" not in parser.tags
    for field in (
        "Example Telecom K.K.",  # issuer
        "T1234567890123",  # registration number
        "2026-06-01",  # invoice date
        "10%対象 Taxable at 10%",  # subtotal per rate
        "98,200",
        "消費税（10%）",  # rate and tax
        "9,820",
        "108,020 円",
        "ブース利用料",
        "Booth fee",
    ):
        assert field in text, field


def test_html_escapes_customer_text_and_warns_without_issuer():
    u = full()
    import msgspec

    page = to_html(invoice(msgspec.structs.replace(u, customer_name="<b>A&B</b>"), "2026-05"))
    assert "&lt;b&gt;A&amp;B&lt;/b&gt; 御中" in page
    assert "適格請求書ではありません" in page


def test_credit_note_renders_as_such():
    original = invoice(full(), "2026-05", issuer=ISSUER)
    note = credit_note(original, number="CN-1", issue_date=d("2026-06-20"), reason="typo")
    assert "適格返還請求書" in to_html(note) and "C-1-202605" in to_html(note)
    total = next(row for row in to_text(note).splitlines() if row.startswith("合計 Total"))
    assert total.split()[-1] == "-108,020"
    assert "Cancels invoice C-1-202605: typo" in to_text(note)


def test_csv_rows_add_up():
    rows = list(csv.DictReader(io.StringIO(to_csv(invoice(full(), "2026-05")))))
    lines = [r for r in rows if r["row"] == "line"]
    assert len(lines) == 11
    assert sum(int(r["amount"]) for r in lines) == 98200
    by_kind = {r["row"]: int(r["amount"]) for r in rows if r["row"] != "line"}
    assert by_kind == {
        "taxable": 98200,
        "tax": 9820,
        "non_taxable": 0,
        "subtotal": 98200,
        "tax_total": 9820,
        "total": 108020,
    }
