"""Sending over SMTP with the settings' host, port, security and credentials."""

import smtplib
import ssl
from email.message import EmailMessage
from types import TracebackType

from patron.settings import Settings


class MailNotConfigured(Exception):
    """PATRON_SMTP_HOST is set but something mail needs is not."""


class SmtpConnection:
    """One SMTP session for a batch of messages: `with SmtpConnection(settings) as smtp: smtp.send(message)`."""

    def __init__(self, settings: Settings) -> None:
        if settings.smtp_host is None:
            raise MailNotConfigured("PATRON_SMTP_HOST is not set")
        self._settings = settings
        self._client: smtplib.SMTP | None = None

    def __enter__(self) -> "SmtpConnection":
        s = self._settings
        host = s.smtp_host or ""
        context = ssl.create_default_context()
        if s.smtp_security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(host, s.smtp_port, timeout=s.smtp_timeout_seconds, context=context)
        else:
            client = smtplib.SMTP(host, s.smtp_port, timeout=s.smtp_timeout_seconds)
        try:
            client.ehlo()
            if s.smtp_security == "starttls":
                client.starttls(context=context)
                client.ehlo()
            if s.smtp_username is not None:
                password = s.smtp_password.get_secret_value() if s.smtp_password is not None else ""
                client.login(s.smtp_username, password)
        except BaseException:
            client.close()
            raise
        self._client = client
        return self

    def send(self, message: EmailMessage) -> None:
        """Raises smtplib.SMTPRecipientsRefused (and other SMTPResponseException) when the server says no."""
        if self._client is None:
            raise RuntimeError("use SmtpConnection as a context manager")
        self._client.send_message(message)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._client is not None:
            try:
                self._client.quit()
            except (smtplib.SMTPException, OSError):
                self._client.close()
            self._client = None
