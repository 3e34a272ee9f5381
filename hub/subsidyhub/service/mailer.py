"""Email to a person, for what they must not miss while no page of theirs is open.

One short plain-text message per event (today: a GPU held for them from the queue), sent
with the standard library's SMTP client in a worker thread, so the enforcer's loop never
waits on a mail server. A failure is logged and dropped: email is a courtesy on top of the
spawn page, the hub's home page and the lab, which say the same. The password is read from
``smtp.password_file`` when sending and never logged.
"""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage

from subsidyhub.settings import Smtp

log = logging.getLogger(__name__)


class Mailer:
    def __init__(self, config: Smtp) -> None:
        self.config = config

    @property
    def enabled(self) -> bool:
        return self.config.host is not None

    def send(self, to: str, subject: str, body: str) -> bool:
        """Send one message; ``True`` if the server accepted it."""
        config = self.config
        if config.host is None:
            return False
        message = EmailMessage()
        message["From"] = config.from_address
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        try:
            with smtplib.SMTP(config.host, config.port, timeout=config.timeout_seconds) as smtp:
                if config.starttls:
                    smtp.starttls()
                if config.username and config.password_file:
                    password = config.password_file.read_text(encoding="utf-8").strip()
                    smtp.login(config.username, password)
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as error:
            log.warning("Email to %s not sent (%s): %s", to, type(error).__name__, str(error)[:200])
            return False
        return True
