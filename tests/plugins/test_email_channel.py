"""The email channel against a real aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
import logging
import ssl
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

import msgspec
import pytest
from aiosmtpd.controller import Controller
from plugin_helpers import (
    EVENT,
    SMTP_PASSWORD,
    Certificate,
    SmtpRecorder,
    SmtpServer,
    free_port,
    make_message,
)
from trackops.core.channels import Attachment, ChannelError
from trackops.core.config import ConfigError, EmailChannelSettings, Secret, Settings
from trackops.core.wire import PackageStatus
from trackops.plugins import email as email_plugin
from trackops.plugins.email import EmailChannel
from trackops.plugins.messages import customer_headline, seller_headline


def settings_for(server: SmtpServer, **changes: object) -> EmailChannelSettings:
    base = EmailChannelSettings(
        host="127.0.0.1", port=server.port, sender="Shop <shop@example.com>", timeout=10
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def parsed(server: SmtpServer, index: int = -1) -> EmailMessage:
    raw = server.recorder.envelopes[index].original_content
    assert raw is not None
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None

    def normal(part: EmailMessage) -> str:
        return part.get_content().replace("\r\n", "\n")

    return normal(text), normal(html)


# --------------------------------------------------------------------------- wording


@pytest.mark.parametrize(
    ("status", "subject"),
    [
        (PackageStatus.PICK_UP, "Your order 1001 is out for delivery"),
        (PackageStatus.DELIVERED, "Your order 1001 has been delivered"),
        (PackageStatus.IN_TRANSIT, "Your order 1001 is on its way"),
        (PackageStatus.UNDELIVERED, "Your order 1001 could not be delivered"),
        (PackageStatus.ALERT, "There is a problem with the delivery of your order 1001"),
    ],
)
def test_customer_subjects_are_plain_language(status: PackageStatus, subject: str) -> None:
    assert customer_headline(make_message(to_status=status)) == subject


def test_customer_subject_without_order_names_the_parcel() -> None:
    message = make_message(order=None, to_status=PackageStatus.DELIVERED)
    assert customer_headline(message) == "Your parcel RR123456789CN has been delivered"


def test_seller_alert_subject() -> None:
    message = make_message(audience="seller", to_status=PackageStatus.ALERT)
    assert seller_headline(message) == (
        "Alert: shipment RR123456789CN (order 1001) needs attention"
    )


# --------------------------------------------------------------------------- delivery


async def test_customer_email_has_subject_text_and_html(smtp_server: SmtpServer) -> None:
    channel = EmailChannel(settings_for(smtp_server))
    await channel.send(make_message())

    envelope = smtp_server.recorder.envelopes[-1]
    assert envelope.mail_from == "shop@example.com"
    assert envelope.rcpt_tos == ["buyer@example.com"]
    message = parsed(smtp_server)
    assert message["Subject"] == "Your order 1001 is out for delivery"
    assert message["To"] == "Zoë Müller <buyer@example.com>"
    assert message["From"] == "Shop <shop@example.com>"
    assert message["Auto-Submitted"] == "auto-generated"
    text, html = parts(message)
    for body in (text, html):
        assert "China Post" in body
        assert "Out for delivery — Zustellung heute" in body
        assert "Köln, Paketzentrum" in body
        assert "2026-11-20 14:05" in body
        assert "https://t.17track.net/en#nums=RR123456789CN" in body
        assert "Zoë Müller" in body
    assert "<h1" in html and "<h1" not in text


async def test_html_is_escaped_and_text_is_not(smtp_server: SmtpServer) -> None:
    event = msgspec.structs.replace(EVENT, description="Parcel <b>held</b> & waiting")
    channel = EmailChannel(settings_for(smtp_server))
    await channel.send(make_message(latest_event=event, buyer_name="<script>x</script>"))
    text, html = parts(parsed(smtp_server))
    assert "Parcel &lt;b&gt;held&lt;/b&gt; &amp; waiting" in html
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert "Parcel <b>held</b> & waiting" in text


async def test_seller_email_goes_to_the_seller_recipient(smtp_server: SmtpServer) -> None:
    message = make_message(
        audience="seller",
        recipient="ops@example.com",
        condition="seller",
        from_status=PackageStatus.IN_TRANSIT,
        to_status=PackageStatus.ALERT,
    )
    await EmailChannel(settings_for(smtp_server)).send(message)
    assert smtp_server.recorder.envelopes[-1].rcpt_tos == ["ops@example.com"]
    sent = parsed(smtp_server)
    assert sent["Subject"] == "Alert: shipment RR123456789CN (order 1001) needs attention"
    text, html = parts(sent)
    assert "In transit -> Alert" in text
    assert "Route: China → Netherlands" in text
    assert "Condition: seller (default)" in text
    assert "Alert" in html


async def test_report_with_attachment_to_several_recipients(smtp_server: SmtpServer) -> None:
    csv = b"number,status\nRR123456789CN,delivered\n"
    message = make_message(
        audience="report",
        recipient="a@example.com, b@example.com",
        condition="weekly-report",
        number="",
        order=None,
        to_status=None,
        from_status=None,
        latest_event=None,
        subject="Weekly report: 12 delivered, 1 alert",
        body="Delivered: 12\nAlert: 1 (RR123456789CN)",
        attachments=(Attachment("shipments.csv", csv, "text/csv"),),
    )
    await EmailChannel(settings_for(smtp_server)).send(message)
    assert smtp_server.recorder.envelopes[-1].rcpt_tos == ["a@example.com", "b@example.com"]
    sent = parsed(smtp_server)
    assert sent["Subject"] == "Weekly report: 12 delivered, 1 alert"
    text, html = parts(sent)
    assert "Delivered: 12\nAlert: 1 (RR123456789CN)" in text
    assert "Attached: shipments.csv" in text
    assert "Delivered: 12" in html
    attachments = list(sent.iter_attachments())
    assert [a.get_filename() for a in attachments] == ["shipments.csv"]
    assert attachments[0].get_content_type() == "text/csv"
    assert attachments[0].get_payload(decode=True) == csv


async def test_refused_recipient_is_a_final_failure_with_the_reply(
    smtp_server: SmtpServer,
) -> None:
    smtp_server.recorder.refuse["buyer@example.com"] = "550 5.1.1 no such user"
    with pytest.raises(ChannelError) as caught:
        await EmailChannel(settings_for(smtp_server)).send(make_message())
    assert "550 5.1.1 no such user" in caught.value.reason
    assert caught.value.retryable is False
    assert smtp_server.recorder.envelopes == []


async def test_temporary_refusal_is_retryable(smtp_server: SmtpServer) -> None:
    smtp_server.recorder.refuse["buyer@example.com"] = "451 4.3.0 try again later"
    with pytest.raises(ChannelError) as caught:
        await EmailChannel(settings_for(smtp_server)).send(make_message())
    assert "451 4.3.0 try again later" in caught.value.reason
    assert caught.value.retryable is True


async def test_partial_refusal_names_who_got_it(smtp_server: SmtpServer) -> None:
    smtp_server.recorder.refuse["b@example.com"] = "550 5.1.1 no such user"
    message = make_message(audience="report", recipient="a@example.com,b@example.com")
    with pytest.raises(ChannelError) as caught:
        await EmailChannel(settings_for(smtp_server)).send(message)
    assert caught.value.retryable is False
    assert "delivered to a@example.com" in caught.value.reason
    assert "550 5.1.1 no such user for b@example.com" in caught.value.reason


async def test_logs_in_when_username_is_set(smtp_server: SmtpServer) -> None:
    settings = settings_for(smtp_server, username="shop", password=Secret(SMTP_PASSWORD))
    await EmailChannel(settings).send(make_message())
    assert smtp_server.recorder.logins == [("shop", SMTP_PASSWORD)]
    assert len(smtp_server.recorder.envelopes) == 1


async def test_no_login_without_username(smtp_server: SmtpServer) -> None:
    settings = settings_for(smtp_server, password=Secret(SMTP_PASSWORD))
    await EmailChannel(settings).send(make_message())
    assert smtp_server.recorder.logins == []
    assert len(smtp_server.recorder.envelopes) == 1


async def test_wrong_password_fails_without_showing_it(
    smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "not-the-Pa55word"
    settings = settings_for(smtp_server, username="shop", password=Secret(wrong))
    with pytest.raises(ChannelError) as caught:
        await EmailChannel(settings).send(make_message())
    assert caught.value.reason.startswith("SMTP login as 'shop' refused: 535")
    assert caught.value.retryable is False
    assert wrong not in caught.value.reason
    assert wrong not in repr(caught.value.__cause__) + repr(caught.value.__context__)
    assert wrong not in caplog.text


async def test_unreachable_server_is_retryable() -> None:
    settings = EmailChannelSettings(host="127.0.0.1", port=free_port(), timeout=5)
    with pytest.raises(ChannelError) as caught:
        await EmailChannel(settings).send(make_message())
    assert caught.value.retryable is True
    assert caught.value.reason.startswith("cannot reach SMTP server 127.0.0.1:")


# --------------------------------------------------------------------------- TLS


def _client_context(certificate: Certificate) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate.cert))


def _server_context(certificate: Certificate) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(certificate.cert), str(certificate.key))
    return context


async def test_starttls(certificate: Certificate) -> None:
    recorder = SmtpRecorder()
    port = free_port()
    controller = Controller(
        recorder,
        hostname="127.0.0.1",
        port=port,
        tls_context=_server_context(certificate),
        require_starttls=True,
        ready_timeout=5,
    )
    controller.start()
    try:
        settings = EmailChannelSettings(host="127.0.0.1", port=port, starttls=True, timeout=10)
        await EmailChannel(settings, tls_context=_client_context(certificate)).send(make_message())
        assert recorder.envelopes[-1].rcpt_tos == ["buyer@example.com"]
        # Without trusting the certificate the failure is final and says why.
        with pytest.raises(ChannelError) as caught:
            await EmailChannel(settings).send(make_message())
        assert "certificate" in caught.value.reason
        assert caught.value.retryable is False
    finally:
        controller.stop()


async def test_implicit_tls(certificate: Certificate) -> None:
    recorder = SmtpRecorder()
    port = free_port()
    controller = Controller(
        recorder,
        hostname="127.0.0.1",
        port=port,
        ssl_context=_server_context(certificate),
        ready_timeout=5,
    )
    controller.start()
    try:
        settings = EmailChannelSettings(host="127.0.0.1", port=port, ssl=True, timeout=10)
        await EmailChannel(settings, tls_context=_client_context(certificate)).send(make_message())
        assert recorder.envelopes[-1].rcpt_tos == ["buyer@example.com"]
    finally:
        controller.stop()


# --------------------------------------------------------------------------- templates


async def test_template_folder_overrides_by_file_name(
    smtp_server: SmtpServer, tmp_path: Path
) -> None:
    (tmp_path / "subject.txt").write_text("[Shop] {{ headline }}", encoding="utf-8")
    (tmp_path / "customer.txt").write_text("Custom text for {{ order }}", encoding="utf-8")
    config = tmp_path / "trackops.toml"
    settings = replace(
        Settings(),
        path=config,
        channels=replace(
            Settings().channels, email=settings_for(smtp_server, templates=tmp_path.name)
        ),
    )
    # A relative folder is relative to the config file.
    settings = replace(settings, path=tmp_path.parent / "trackops.toml")
    registered = []
    email_plugin.trackops_register_channels(registered.append, settings)
    (channel,) = registered
    await channel.send(make_message())
    sent = parsed(smtp_server)
    assert sent["Subject"] == "[Shop] Your order 1001 is out for delivery"
    text, html = parts(sent)
    assert text.strip() == "Custom text for 1001"
    assert "Follow your parcel" in html  # the HTML template was not overridden


def test_missing_template_folder_is_a_config_error(tmp_path: Path) -> None:
    settings = replace(
        Settings(),
        path=tmp_path / "trackops.toml",
        channels=replace(
            Settings().channels, email=EmailChannelSettings(templates="no-such-folder")
        ),
    )
    with pytest.raises(ConfigError, match=r"\[channels.email\] templates"):
        email_plugin.trackops_register_channels(lambda channel: None, settings)


async def test_broken_template_is_a_final_failure(tmp_path: Path) -> None:
    (tmp_path / "customer.txt").write_text("{% if %}", encoding="utf-8")
    channel = EmailChannel(EmailChannelSettings(), templates=tmp_path)
    with pytest.raises(ChannelError) as caught:
        await channel.send(make_message())
    assert caught.value.reason.startswith("email template customer.txt:")
    assert caught.value.retryable is False
