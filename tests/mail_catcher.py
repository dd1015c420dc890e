"""A loopback SMTP server (aiosmtpd) that keeps what it receives, optionally
offering STARTTLS with a certificate of a throwaway CA (trustme)."""

from __future__ import annotations

import socket
import ssl
import threading
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.tls_seen: list[bool] = []
        self.arrived = threading.Event()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 (aiosmtpd's hook name)
        self.messages.append(message_from_bytes(envelope.original_content or b""))
        self.tls_seen.append(session.ssl is not None)
        self.arrived.set()
        return "250 OK"


def _free_port() -> int:
    """A port free now (aiosmtpd's start-up check cannot use port 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class MailCatcher:
    def __init__(self, tls_context: ssl.SSLContext | None = None) -> None:
        self.inbox = _Inbox()
        kwargs: dict[str, Any] = {}
        if tls_context is not None:
            kwargs = {"tls_context": tls_context, "require_starttls": True}
        self.controller = Controller(
            self.inbox,
            hostname="127.0.0.1",
            port=_free_port(),
            server_hostname="localhost",
            **kwargs,
        )

    def start(self) -> MailCatcher:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    @property
    def url(self) -> str:
        return f"smtp://localhost:{self.controller.port}"

    @property
    def messages(self) -> list[Message]:
        return self.inbox.messages

    def to(self, address: str) -> list[Message]:
        return [m for m in self.messages if m["To"] == address]
