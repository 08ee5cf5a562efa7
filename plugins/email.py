"""Built-in plugin ``email``: the ``email`` channel, SMTP through aiosmtplib.

Settings: ``[channels.email] host, port, username, password, starttls, ssl, sender,
templates, timeout``. ``ssl = true`` is implicit TLS (usually port 465), ``starttls = true``
upgrades a plain connection (usually port 587); neither means plain SMTP (a local relay). The
channel logs in only when ``username`` is set.

Each message is multipart: a plain-text part and an HTML part, rendered from Jinja2 templates
(``subject.txt``, ``customer.txt``/``.html``, ``seller.txt``/``.html``, ``report.txt``/``.html``,
``base.html``) shipped in ``trackops/plugins/templates``. A ``templates`` folder in the config
(relative paths are relative to the config file) overrides any of them by file name. HTML
templates are autoescaped; text templates are not.

Recipients: ``Message.recipient`` is one address, or several separated by commas (report
messages may list every report recipient in one message); they all go in one ``To:``. The
buyer receives customer messages, the seller recipient seller messages: the engine already
put the right address in ``recipient``.

Failures: a refusal by the server becomes ``ChannelError`` whose reason is the server's reply
(``550 5.1.1 no such user``), not retryable for a 5xx reply and retryable for 4xx; a server
that cannot be reached is retryable. The password never appears in a reason or a log line.
"""

from __future__ import annotations

import email.utils
import re
import ssl
from email.message import EmailMessage
from email.policy import SMTP
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trackops.core.channels import ChannelError, Message
from trackops.core.config import ConfigError, EmailChannelSettings, Settings
from trackops.core.hookspecs import RegisterChannel, hookimpl
from trackops.plugins.messages import event_view, headline, route, status_name

if TYPE_CHECKING:
    # Jinja2 is imported when the channel is built, aiosmtplib when it sends: loading the
    # plugin (e.g. for the CLI's list of commands) costs nothing.
    import jinja2

__all__ = ["EmailChannel", "make_environment", "trackops_register_channels"]

_SPLIT = re.compile(r"[,;]")


@hookimpl
def trackops_register_channels(register: RegisterChannel, settings: Settings) -> None:
    """Register the ``email`` channel (always: email is the default channel)."""
    mail = settings.channels.email
    templates = None
    if mail.templates:
        templates = Path(mail.templates).expanduser()
        if not templates.is_absolute() and settings.path is not None:
            templates = settings.path.parent / templates
        if not templates.is_dir():
            where = f"{settings.path}: " if settings.path else ""
            raise ConfigError(
                f"{where}[channels.email] templates: expected a folder of templates,"
                f' found "{mail.templates}" (no such folder)'
            )
    register(EmailChannel(mail, templates=templates))


def _packaged_template(name: str) -> tuple[str, None, Any] | None:
    if "/" in name or "\\" in name or name.startswith("."):
        return None
    path = resources.files("trackops.plugins").joinpath("templates").joinpath(name)
    if not path.is_file():
        return None
    return path.read_text("utf-8"), None, lambda: True


def make_environment(templates: Path | None = None) -> jinja2.Environment:
    """The Jinja2 environment: ``templates`` (if given) first, then the packaged templates."""
    import jinja2

    loaders: list[jinja2.BaseLoader] = []
    if templates is not None:
        loaders.append(jinja2.FileSystemLoader(str(templates)))
    loaders.append(jinja2.FunctionLoader(_packaged_template))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html", "htm", "xml"), default_for_string=False, default=False
        ),
        trim_blocks=False,
        keep_trailing_newline=True,
    )


def split_recipients(recipient: str) -> list[str]:
    """``"a@x, b@y"`` -> ``["a@x", "b@y"]`` (display names kept out of the envelope)."""
    out = []
    for part in _SPLIT.split(recipient or ""):
        _, address = email.utils.parseaddr(part.strip())
        if address:
            out.append(address)
    return out


def message_id(message: Message, domain: str | None) -> str:
    """A ``Message-ID`` that stays the same for one history row however often it is sent.

    A resend after a crash (sent, but not yet recorded as sent) then carries the same id, so
    mail clients and servers that de-duplicate on it show it once. The row's creation time
    keeps ids apart between two databases that reuse row ids.
    """
    if not message.notification_id:
        return email.utils.make_msgid("trackops", domain=domain)
    created = f"{message.created_at:%Y%m%d%H%M%S%f}" if message.created_at else "0"
    return f"<trackops.{message.notification_id}.{created}@{domain or 'localhost'}>"


class EmailChannel:
    """The ``email`` channel; ``tls_context`` overrides certificate checks (tests, private CA)."""

    name = "email"

    def __init__(
        self,
        settings: EmailChannelSettings,
        *,
        templates: Path | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.settings = settings
        self.templates = templates
        self.tls_context = tls_context

    @cached_property
    def env(self) -> jinja2.Environment:
        """The templates' environment, made on the first message (loading plugins, e.g. for
        the CLI's list of commands, builds this channel without sending anything)."""
        return make_environment(self.templates)

    # ------------------------------------------------------------------ rendering

    def context(self, message: Message) -> dict[str, Any]:
        """What the templates see (documented in docs/plugins.md)."""
        return {
            "message": message,
            "audience": message.audience,
            "headline": headline(message),
            "status": message.to_status.slug if message.to_status is not None else "",
            "status_name": status_name(message.to_status),
            "from_status_name": status_name(message.from_status),
            "number": message.number,
            "order": message.order,
            "buyer_name": message.buyer_name,
            "tag": message.tag,
            "carrier": message.carrier_name,
            "event": event_view(message),
            "route": route(message),
            "tracking_url": message.tracking_url,
            "condition": message.condition,
            "condition_kind": message.condition_kind,
            "subject": message.subject,
            "body": message.body,
            "attachment_names": [a.filename for a in message.attachments],
        }

    def _render(self, name: str, context: dict[str, Any]) -> str:
        import jinja2

        try:
            return self.env.get_template(name).render(context)
        except jinja2.TemplateError as exc:
            raise ChannelError(f"email template {name}: {exc}", retryable=False) from None

    def build(self, message: Message) -> EmailMessage:
        """The email for ``message``: subject, text and HTML parts, attachments."""
        recipients = split_recipients(message.recipient)
        if not recipients:
            raise ChannelError(f"no email address in {message.recipient!r}", retryable=False)
        context = self.context(message)
        kind = message.audience if message.audience in ("customer", "seller") else "report"
        subject = " ".join(self._render("subject.txt", context).split())
        text = self._render(f"{kind}.txt", context)
        html = self._render(f"{kind}.html", context)
        mail = EmailMessage(policy=SMTP)
        mail["Subject"] = subject or context["headline"]
        mail["From"] = self.settings.sender
        if len(recipients) == 1 and message.audience == "customer" and message.buyer_name:
            mail["To"] = email.utils.formataddr((message.buyer_name, recipients[0]))
        else:
            mail["To"] = ", ".join(recipients)
        mail["Date"] = email.utils.formatdate(localtime=False, usegmt=True)
        domain = self._sender_address().rpartition("@")[2] or None
        mail["Message-ID"] = message_id(message, domain)
        mail["Auto-Submitted"] = "auto-generated"
        if message.notification_id:
            mail["X-Trackops-Notification"] = str(message.notification_id)
        mail.set_content(text)
        mail.add_alternative(html, subtype="html")
        for attachment in message.attachments:
            maintype, _, subtype = attachment.mime_type.partition("/")
            mail.add_attachment(
                attachment.content,
                maintype=maintype or "application",
                subtype=subtype or "octet-stream",
                filename=attachment.filename,
            )
        return mail

    def _sender_address(self) -> str:
        return email.utils.parseaddr(self.settings.sender)[1] or self.settings.sender

    # ------------------------------------------------------------------ sending

    def _scrub(self, text: str) -> str:
        secret = self.settings.password.reveal()
        return text.replace(secret, "********") if secret else text

    async def send(self, message: Message) -> None:
        """Send ``message`` over SMTP, or raise ``ChannelError`` with the server's reply."""
        import aiosmtplib

        mail = self.build(message)
        recipients = split_recipients(message.recipient)
        s = self.settings
        where = f"{s.host}:{s.port}"
        try:
            errors, _ = await aiosmtplib.send(
                mail,
                sender=self._sender_address(),
                recipients=recipients,
                hostname=s.host,
                port=s.port,
                username=s.username or None,
                password=(s.password.reveal() or None) if s.username else None,
                use_tls=s.ssl,
                start_tls=s.starttls,
                timeout=s.timeout,
                tls_context=self.tls_context,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients
            reason = "; ".join(f"{r.code} {r.message} for {r.recipient}" for r in refused)
            retryable = all(400 <= r.code < 500 for r in refused)
            raise ChannelError(self._scrub(reason), retryable=retryable) from None
        except aiosmtplib.SMTPAuthenticationError as exc:
            reason = f"SMTP login as {s.username!r} refused: {exc.code} {exc.message}"
            raise ChannelError(self._scrub(reason), retryable=400 <= exc.code < 500) from None
        except aiosmtplib.SMTPSenderRefused as exc:
            reason = f"sender {exc.sender} refused: {exc.code} {exc.message}"
            raise ChannelError(self._scrub(reason), retryable=400 <= exc.code < 500) from None
        except aiosmtplib.SMTPResponseException as exc:
            reason = f"{exc.code} {exc.message}"
            raise ChannelError(self._scrub(reason), retryable=exc.code < 500) from None
        except aiosmtplib.SMTPNotSupported as exc:
            # e.g. STARTTLS or AUTH asked for but not offered: a configuration problem.
            reason = f"SMTP server {where}: {exc}"
            raise ChannelError(self._scrub(reason), retryable=False) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            certificate = _certificate_error(exc)
            if certificate is not None:
                reason = f"SMTP server {where}: TLS certificate not trusted: {certificate}"
                raise ChannelError(self._scrub(reason), retryable=False) from None
            detail = str(exc) or type(exc).__name__
            reason = f"cannot reach SMTP server {where}: {detail}"
            raise ChannelError(self._scrub(reason), retryable=True) from None
        if errors:
            # Some recipients accepted, some refused: retrying would send the message twice
            # to the ones who got it, so this is a final failure that names the refused ones.
            refusals = "; ".join(f"{r.code} {r.message} for {a}" for a, r in errors.items())
            accepted = ", ".join(a for a in recipients if a not in errors)
            reason = f"delivered to {accepted}; refused: {refusals}"
            raise ChannelError(self._scrub(reason), retryable=False)

    async def aclose(self) -> None:
        """Nothing to release: each send opens and closes its own SMTP connection."""


def _certificate_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
