"""Customer notices (accepted, substitution, ready, cancelled) over e-mail (SMTP) and SMS (an HTTP
gateway), drained from their own durable outbox by :class:`DeliveryActor`. No vendor lock-in: SMS is a
plain ``POST {"to", "message"}`` with a bearer token, which most gateways (or a ten-line adapter) take.
With ``email = "sink"`` / ``sms = "sink"`` (the demo) a notice is kept in the store, where the back office
shows it, and counts as delivered.
"""

from __future__ import annotations

import smtplib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage

import httpx
import trio

from actors.delivery import DeliveryFailed
from hub.config import NoticesSection
from hub.domain.delivery import Delivery


class Notifier:
    def __init__(self, settings: NoticesSection, store_name: str) -> None:
        self.settings = settings
        self.store_name = store_name
        self.client: httpx.AsyncClient | None = None

    @asynccontextmanager
    async def session(self) -> AsyncIterator[None]:
        """One HTTP client per run of the delivery actor (a restarted run gets a fresh one)."""
        client = httpx.AsyncClient(timeout=httpx.Timeout(self.settings.timeout_seconds))
        self.client = client
        try:
            yield
        finally:
            self.client = None
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                await client.aclose()

    async def send(self, entry: Delivery) -> None:
        mode = self.settings.email if entry.route == "email" else self.settings.sms
        if mode == "sink":
            return  # kept in the notices table; the back office lists it
        if mode == "none":
            raise DeliveryFailed(f"{entry.route} notices are switched off", permanent=True)
        if entry.route == "email":
            await trio.to_thread.run_sync(self._smtp, entry)
        else:
            await self._sms(entry)

    def _smtp(self, entry: Delivery) -> None:
        s = self.settings
        msg = EmailMessage()
        msg["From"] = s.smtp_from
        msg["To"] = entry.to
        msg["Subject"] = f"{self.store_name}: {entry.subject}"
        msg["Message-ID"] = f"<notice-{entry.seq}-{entry.order_id}@storehub>"
        msg.set_content(entry.payload.decode())
        try:
            with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.timeout_seconds) as smtp:
                if s.smtp_starttls:
                    smtp.starttls()
                if s.smtp_username:
                    smtp.login(s.smtp_username, s.smtp_password)
                smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryFailed(
                f"the mail server refused {entry.to}: {exc.recipients}", permanent=True
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryFailed(f"SMTP: {type(exc).__name__}: {exc}") from None

    async def _sms(self, entry: Delivery) -> None:
        s = self.settings
        if not s.sms_url:
            raise DeliveryFailed("no SMS gateway URL configured", permanent=True)
        if self.client is None:
            raise DeliveryFailed("the notifier is not running")
        headers = {"authorization": f"Bearer {s.sms_token}"} if s.sms_token else {}
        body = {"to": entry.to, "message": entry.payload.decode()}
        try:
            async with self.client.stream("POST", s.sms_url, json=body, headers=headers) as r:
                await r.aread()
                status = r.status_code
        except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:
            raise DeliveryFailed(f"SMS gateway: {type(exc).__name__}: {exc}") from None
        if status >= 500 or status == 429:
            raise DeliveryFailed(f"SMS gateway answered {status}")
        if status >= 400:
            raise DeliveryFailed(f"SMS gateway refused the message ({status})", permanent=True)
