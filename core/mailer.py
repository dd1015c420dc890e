"""Sending one email through the configured SMTP server (standard library ``smtplib``).

``MAIL_URL`` names the server: ``smtp://user:pass@host:port`` (port 25 by
default) upgrades to TLS with STARTTLS whenever the server offers it;
``smtps://user:pass@host:port`` (port 465 by default) speaks TLS from the
first byte. Certificates are verified against the system's CA store
(``ssl.create_default_context``, which honours ``SSL_CERT_FILE``), with the
host name checked. User name and password are URL-decoded.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from urllib.parse import unquote, urlsplit

from core.errors import ValidationError


@dataclass(frozen=True)
class MailServer:
    host: str
    port: int
    implicit_tls: bool
    user: str | None
    password: str | None
    sender: str
    timeout: float = 30.0

    @classmethod
    def from_url(cls, url: str, sender: str, timeout: float = 30.0) -> MailServer:
        """Parse ``MAIL_URL``; ``ValidationError`` when it is not smtp:// or smtps://."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValidationError("MAIL_URL must look like smtp://user:pass@host:port.")
        if not sender:
            raise ValidationError("MAIL_FROM must be set when MAIL_URL is.")
        implicit = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if implicit else 25),
            implicit_tls=implicit,
            user=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            sender=sender,
            timeout=timeout,
        )

    def send(self, to: str, subject: str, text: str) -> None:
        """Deliver one plain-text message; any failure raises (OSError, smtplib.SMTPException)."""
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = make_msgid(
            domain=parseaddr(self.sender)[1].rpartition("@")[2] or None
        )
        message.set_content(text)
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if self.implicit_tls:
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with smtp:
            smtp.ehlo()
            if not self.implicit_tls and smtp.has_extn("starttls"):
                smtp.starttls(context=context)
                smtp.ehlo()
            if self.user is not None:
                smtp.login(self.user, self.password or "")
            smtp.send_message(message)
