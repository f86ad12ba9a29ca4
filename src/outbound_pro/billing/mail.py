"""Invoice notices by e-mail (SMTP), and the ``[smtp]`` configuration table.

The notice goes to the contract's notice address (``contracts.email``, the address Art. 34
notices use). It carries the invoice as text in the body and the printable HTML and the CSV
as attachments, so the customer needs nothing but a mail client. Sending is synchronous
(``smtplib``): it runs from the CLI's monthly run, never on the server's event loop.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from outbound_pro.billing.model import Invoice
from outbound_pro.billing.render import to_text, yen
from outbound_pro.config import SmtpConfig

LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


class MailError(Exception):
    """A notice could not be sent; the message says why (kept on the mail row)."""


def check_smtp(config: SmtpConfig) -> None:
    """Refuse a configuration that cannot send, before a run starts issuing."""
    if not config.host:
        raise MailError("no mail server: set host (and from_address) under [smtp]")
    if not config.from_address or "@" not in config.from_address:
        raise MailError("set from_address under [smtp], e.g. billing@provider.example")
    if config.username and not config.starttls and config.host not in LOOPBACK:
        raise MailError(
            "[smtp] has a username but starttls = false: the password would travel in clear; "
            "set starttls = true"
        )


def compose(
    invoice: Invoice,
    *,
    to: str,
    sender: str,
    due_date: str,
    html: str,
    csv: str,
) -> EmailMessage:
    """The notice of one invoice or credit note."""
    what = "請求書 Invoice" if invoice.kind == "invoice" else "返還請求書 Credit note"
    message = EmailMessage()
    message["Subject"] = f"{what} {invoice.number} ({invoice.month})"
    message["From"] = sender
    message["To"] = to
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    intro = (
        f"{invoice.customer_name or invoice.contract} 御中\n\n"
        f"{invoice.month} 分の{what.split(' ')[0]}をお送りします。\n"
        f"Please find the {what.split(' ', 1)[1].lower()} for {invoice.month} below and "
        "attached (HTML to print, CSV for your books).\n\n"
        f"合計 Total: {yen(invoice.total)} 円 (yen)\n"
    )
    if invoice.kind == "invoice":
        intro += f"支払期日 Due date: {due_date}\n"
    message.set_content(intro + "\n" + to_text(invoice))
    message.add_attachment(
        html.encode("utf-8"),
        maintype="text",
        subtype="html",
        filename=f"{invoice.number}.html",
    )
    message.add_attachment(
        ("\ufeff" + csv).encode("utf-8"),
        maintype="text",
        subtype="csv",
        filename=f"{invoice.number}.csv",
    )
    return message


class SmtpMailer:
    """Sends notices through the configured server; one connection per run."""

    def __init__(self, config: SmtpConfig) -> None:
        check_smtp(config)
        self.config = config
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        if self._smtp is not None:
            return self._smtp
        config = self.config
        smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
        try:
            smtp.ehlo()
            if config.starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if config.username:
                smtp.login(config.username, config.password)
        except BaseException:
            smtp.close()
            raise
        self._smtp = smtp
        return smtp

    def send(self, message: EmailMessage) -> None:
        try:
            self._connect().send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            raise MailError(f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (OSError, smtplib.SMTPException):
                self._smtp.close()
            self._smtp = None
