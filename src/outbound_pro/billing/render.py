"""Invoice renderings: JSON (the record), a text table (for checking on a terminal), a
printable HTML page (what the customer receives) and CSV (for accounting software).

All of them show the same numbers from the same ``Invoice``; nothing is recomputed here, so a
rendering can never disagree with the stored invoice.
"""

from __future__ import annotations

import csv
import html
import io
import unicodedata
from decimal import Decimal

import msgspec

from outbound_pro.billing.model import Invoice

_ENCODER = msgspec.json.Encoder(decimal_format="string")


def to_json(invoice: Invoice) -> bytes:
    """The invoice as indented JSON (rates as strings, money as integers)."""
    return msgspec.json.format(_ENCODER.encode(invoice), indent=2) + b"\n"


def from_json(data: bytes) -> Invoice:
    """Read back an invoice written by ``to_json`` (for storage and tests)."""
    return msgspec.json.decode(data, type=Invoice)


def percent(rate: Decimal) -> str:
    """0.10 -> '10%', 0.08 -> '8%', 0.145 -> '14.5%'."""
    text = format((rate * 100).normalize(), "f")
    return f"{text}%"


def yen(amount: int) -> str:
    return f"{amount:,}"


def _width(text: str) -> int:
    """Terminal columns: East Asian wide and full-width characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int, *, right: bool = False) -> str:
    gap = " " * max(0, width - _width(text))
    return gap + text if right else text + gap


def _title(invoice: Invoice) -> tuple[str, str]:
    if invoice.kind == "credit_note":
        return "適格返還請求書", "Credit note"
    return "請求書", "Invoice"


def to_text(invoice: Invoice) -> str:
    """A readable table with the qualified-invoice fields, for an operator's terminal."""
    ja, en = _title(invoice)
    out = [f"{ja} {en}  No. {invoice.number}"]
    if invoice.issuer is None:
        out.append("発行者 Issuer: (not configured: not a qualified invoice)")
    else:
        out.append(
            f"発行者 Issuer: {invoice.issuer.name}  "
            f"登録番号 Registration No.: {invoice.issuer.registration_number}"
        )
    customer = invoice.customer_name or invoice.contract
    out.append(f"宛先 Customer: {customer}  契約 Contract: {invoice.contract}")
    out.append(
        f"対象期間 Period: {invoice.period_start} to {invoice.period_end} ({invoice.month})  "
        f"請求日 Invoice date: {invoice.issue_date}"
    )
    if invoice.refers_to:
        out.append(f"元の請求書 Original invoice: {invoice.refers_to}")
    header = ("Code", "品目 Item", "Qty", "Unit price", "Amount", "Tax")
    rows = [
        (
            line.code,
            line.label_ja,
            str(line.quantity),
            yen(line.unit_price),
            yen(line.amount),
            percent(line.tax_rate) if line.tax_rate is not None else "不課税",
        )
        for line in invoice.lines
    ]
    summary: list[tuple[str, int]] = []
    for t in invoice.taxes:
        summary.append((f"{percent(t.rate)}対象 Taxable at {percent(t.rate)}", t.taxable_subtotal))
        summary.append((f"消費税 Consumption tax {percent(t.rate)}", t.tax))
    if invoice.non_taxable_subtotal:
        summary.append(("不課税 Outside consumption tax", invoice.non_taxable_subtotal))
    summary += [("小計 Subtotal", invoice.subtotal), ("消費税計 Tax", invoice.tax)]
    summary.append(("合計 Total", invoice.total))

    widths = [max(_width(r[k]) for r in (header, *rows)) for k in range(len(header))]
    widths[4] = max(widths[4], *(len(yen(amount)) for _, amount in summary))
    numeric = (False, False, True, True, True, True)

    def fmt(row: tuple[str, ...]) -> str:
        cells = (_pad(c, w, right=n) for c, w, n in zip(row, widths, numeric, strict=True))
        return "  ".join(cells).rstrip()

    rule = "-" * _width(fmt(header))
    out += ["", fmt(header), rule]
    out.extend(fmt(row) for row in rows)
    if not rows:
        out.append("(no charges this month)")
    out.append(rule)
    # Summary amounts end in the Amount column so they can be added up by eye.
    amount_end = sum(widths[:5]) + 2 * 4
    for label, amount in summary:
        out.append(_pad(label, amount_end - widths[4]) + yen(amount).rjust(widths[4]))
    notes = [f"{line.code}: {line.note}" for line in invoice.lines if line.note]
    notes += list(invoice.notes)
    if notes:
        out.append("")
        out.append("備考 Notes:")
        out.extend(f"  - {note}" for note in notes)
    return "\n".join(out) + "\n"


_CSS = """
@page { size: A4; margin: 15mm; }
body { font-family: "Noto Sans JP", "Hiragino Sans", "Yu Gothic", sans-serif; color: #111;
       font-size: 10.5pt; margin: 0 auto; max-width: 190mm; }
h1 { font-size: 18pt; margin: 0 0 4mm; letter-spacing: 0.1em; }
h1 small { font-size: 10pt; letter-spacing: 0; color: #555; }
.head { display: flex; justify-content: space-between; gap: 8mm; margin-bottom: 6mm; }
.head table td, .head table th { padding: 0.5mm 2mm; text-align: left; vertical-align: top; }
.head th { font-weight: normal; color: #555; white-space: nowrap; }
.to { font-size: 13pt; border-bottom: 1px solid #111; padding-bottom: 1mm; }
.total { font-size: 14pt; border: 2px solid #111; padding: 2mm 4mm; margin: 4mm 0; }
table.lines { width: 100%; border-collapse: collapse; }
table.lines th, table.lines td { border: 1px solid #999; padding: 1mm 2mm; }
table.lines th { background: #eee; font-weight: normal; }
td.n { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
.en { color: #555; font-size: 8.5pt; display: block; }
.note { color: #555; font-size: 8.5pt; }
table.sum { margin-left: auto; border-collapse: collapse; margin-top: 3mm; }
table.sum th, table.sum td { padding: 0.8mm 2mm; border-bottom: 1px solid #ccc; }
table.sum th { text-align: left; font-weight: normal; }
.warn { color: #a00; font-weight: bold; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def to_html(invoice: Invoice) -> str:
    """One self-contained printable page (inline CSS, no external resources) with the
    qualified-invoice fields in Japanese with English."""
    ja, en = _title(invoice)
    if invoice.issuer is None:
        issuer = (
            '<tr><th>発行者 Issuer</th><td class="warn">未設定 not configured: '
            "this is not a qualified invoice (適格請求書ではありません)</td></tr>"
        )
    else:
        issuer = (
            f"<tr><th>発行者 Issuer</th><td>{_e(invoice.issuer.name)}</td></tr>"
            f"<tr><th>登録番号 Registration No.</th>"
            f"<td>{_e(invoice.issuer.registration_number)}</td></tr>"
        )
    refers = (
        f"<tr><th>元の請求書 Original invoice</th><td>{_e(invoice.refers_to)}</td></tr>"
        if invoice.refers_to
        else ""
    )
    rows = []
    for line in invoice.lines:
        note = f'<div class="note">{_e(line.note)}</div>' if line.note else ""
        tax = percent(line.tax_rate) if line.tax_rate is not None else "不課税<br>outside tax"
        rows.append(
            f"<tr><td>{_e(line.label_ja)}<span class=en>{_e(line.label_en)}</span>{note}</td>"
            f'<td class="n">{line.quantity}</td><td class="n">{yen(line.unit_price)}</td>'
            f'<td class="n">{yen(line.amount)}</td><td class="n">{tax}</td></tr>'
        )
    if not rows:
        rows.append('<tr><td colspan="5">今月のご請求はありません No charges this month</td></tr>')
    sums = []
    for t in invoice.taxes:
        p = percent(t.rate)
        sums.append(
            f"<tr><th>{p}対象 Taxable at {p}</th><td class=n>{yen(t.taxable_subtotal)}</td></tr>"
            f"<tr><th>消費税（{p}） Consumption tax</th><td class=n>{yen(t.tax)}</td></tr>"
        )
    if invoice.non_taxable_subtotal:
        sums.append(
            "<tr><th>不課税 Outside consumption tax</th>"
            f"<td class=n>{yen(invoice.non_taxable_subtotal)}</td></tr>"
        )
    sums.append(f"<tr><th>小計 Subtotal</th><td class=n>{yen(invoice.subtotal)}</td></tr>")
    sums.append(f"<tr><th>消費税計 Tax</th><td class=n>{yen(invoice.tax)}</td></tr>")
    sums.append(f"<tr><th><b>合計 Total</b></th><td class=n><b>{yen(invoice.total)}</b></td></tr>")
    notes = "".join(f"<li>{_e(n)}</li>" for n in invoice.notes)
    notes_html = f"<h2>備考 Notes</h2><ul>{notes}</ul>" if notes else ""
    customer = invoice.customer_name or invoice.contract
    return f"""<!DOCTYPE html>
<html lang="ja">
<head>
<meta charset="utf-8">
<title>{ja} {en} {_e(invoice.number)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{ja} <small>{en}</small></h1>
<div class="head">
<div>
<p class="to">{_e(customer)} 御中</p>
<table>
<tr><th>契約番号 Contract</th><td>{_e(invoice.contract)}</td></tr>
<tr><th>対象期間 Billing period</th>
<td>{invoice.period_start} – {invoice.period_end} ({_e(invoice.month)})</td></tr>
</table>
</div>
<table>
<tr><th>請求番号 No.</th><td>{_e(invoice.number)}</td></tr>
<tr><th>請求日 Invoice date</th><td>{invoice.issue_date}</td></tr>
{refers}
{issuer}
</table>
</div>
<p class="total">ご請求金額 Amount due（税込 tax included）: <b>{yen(invoice.total)} 円</b></p>
<table class="lines">
<thead><tr><th>品目 Item</th><th>数量 Qty</th><th>単価 Unit price (円)</th>
<th>金額 Amount (円)</th><th>税率 Tax rate</th></tr></thead>
<tbody>
{"".join(rows)}
</tbody>
</table>
<table class="sum">
{"".join(sums)}
</table>
<p class="note">金額は税抜、消費税は税率ごとに合計額から計算し1円未満切捨て（規約第20条）。
Amounts exclude tax; tax is computed once per rate on the subtotal and truncated to the yen
(Art. 20).</p>
{notes_html}
</body>
</html>
"""


CSV_COLUMNS = (
    "invoice",
    "contract",
    "month",
    "row",
    "code",
    "label_ja",
    "label_en",
    "quantity",
    "unit_price",
    "amount",
    "tax_rate",
    "note",
)


def to_csv(invoice: Invoice) -> str:
    """Lines, then one row per tax rate and the totals, all with the same columns so the
    file loads as one table. ``row`` says what a row is: line, taxable, tax, non_taxable,
    subtotal, tax_total, total."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    head = (invoice.number, invoice.contract, invoice.month)
    for line in invoice.lines:
        rate = "" if line.tax_rate is None else str(line.tax_rate)
        writer.writerow(
            (
                *head,
                "line",
                line.code,
                line.label_ja,
                line.label_en,
                line.quantity,
                line.unit_price,
                line.amount,
                rate,
                line.note,
            )
        )
    for t in invoice.taxes:
        writer.writerow((*head, "taxable", "", "", "", "", "", t.taxable_subtotal, t.rate, ""))
        writer.writerow((*head, "tax", "", "", "", "", "", t.tax, t.rate, ""))
    writer.writerow(
        (*head, "non_taxable", "", "", "", "", "", invoice.non_taxable_subtotal, "", "")
    )
    writer.writerow((*head, "subtotal", "", "", "", "", "", invoice.subtotal, "", ""))
    writer.writerow((*head, "tax_total", "", "", "", "", "", invoice.tax, "", ""))
    writer.writerow((*head, "total", "", "", "", "", "", invoice.total, "", ""))
    return buffer.getvalue()
