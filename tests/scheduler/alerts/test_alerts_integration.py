"""Alerts end to end, as they run in production: a real beat publishes a schedule, a real worker
runs it, the engine opens and closes the incident in the worker, and the notifications travel
through the broker to a real SMTP server and a real webhook receiver (signed). The watcher
thread in the worker notices a beat killed with no standby. A receiver answering 500 is tried
again, and its failure is on the delivery's row."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduler.core.redis_connection import get_redis, redis_key
from scheduler.core.signing import signature_check
from scheduler.models import Incident, NotificationDelivery
from scheduler.protocol import BEAT_LEADER_KEY
from scheduler.services import schedule_create, schedule_disable
from scheduler.services.incidents import RULES_TTL, channel_test, rules_reload
from tests.alert_receivers import MailReceiver
from tests.factories import make_channel, make_rule
from tests.processes import RunningProcess, start_beat, start_worker, wait_for
from tests.receivers import Receiver

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SECRET = "integration-signing-key"


@pytest.fixture(autouse=True)
def recording_channels() -> None:
    """Not the unit tests' in-process deliveries: here they go through the broker."""
    rules_reload()


@pytest.fixture
def mail() -> Iterator[MailReceiver]:
    receiver = MailReceiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
def alerting_worker(mail: MailReceiver, run_dir: Path) -> Iterator[RunningProcess]:
    """A worker whose mail goes to `mail`, with fast retries and a watcher checking every 0.5 s."""
    worker = start_worker(
        log_dir=run_dir,
        env={
            "EMAIL_URL": mail.url,
            "ALERTS_WEBHOOK_SECRET": SECRET,
            "ALERTS_WATCH_INTERVAL": "0.5",
            "ALERTS_RETRY_DELAY": "0.2",
            "ALERTS_DELIVERY_RETRIES": "2",
        },
    )
    try:
        yield worker
    finally:
        worker.stop()
        get_redis().delete(redis_key(BEAT_LEADER_KEY))


def test_two_failures_then_a_success_tell_down_once_and_recovered_once(
    alerting_worker: RunningProcess,
    mail: MailReceiver,
    receiver: Receiver,
    run_dir: Path,
) -> None:
    make_channel("mail", kind="email", to=["oncall@example.com"])
    make_channel("hook", kind="webhook", url=receiver.url)
    # Fails twice, then succeeds for as long as the test runs.
    schedule_create(
        name="flaky report",
        task="scheduler.flaky",
        schedule="every 1 second",
        params={"pattern": "FF" + "S" * 18},
    )
    make_rule(
        "report failures",
        "failed",
        target_type="schedule",
        target="flaky report",
        channels=("mail", "hook"),
    )
    # A worker's processes read the rules again every RULES_TTL seconds: one that read them
    # before the rule was made (the worker's alert watch, run before its pool was forked) sees
    # it by then. The first two runs fail: they must meet the rule.
    time.sleep(RULES_TTL + 0.5)
    beat = start_beat(log_dir=run_dir, env={"BEAT_LEADER_TTL": "3"})
    try:
        wait_for(
            lambda: Incident.objects.filter(resolved_at__isnull=False).exists(),
            timeout=60,
            what="the incident to open and recover",
        )
        schedule_disable(name="flaky report")
        wait_for(
            lambda: len(mail.received) >= 2 and len(receiver.received) >= 2,
            timeout=30,
            what="both notifications on both channels",
        )
    finally:
        beat.stop()
    incident = Incident.objects.get()
    assert incident.match_count == 2
    assert [m.subject for m in mail.received] == [
        "[DOWN] schedule 'flaky report' failed",
        "[RECOVERED] schedule 'flaky report' failed",
    ]
    assert mail.received[0].recipients == ["oncall@example.com"]
    assert "Last error: FlakyFailure: run 1 of 'flaky report' fails" in mail.received[0].text
    assert "Recovered after" in mail.received[1].text
    bodies = receiver.bodies()
    assert [body["kind"] for body in bodies] == ["down", "recovered"]
    for headers, body in receiver.received:
        signature_check(SECRET, body, headers["X-Scheduler-Signature"])
    assert set(NotificationDelivery.objects.values_list("status", flat=True)) == {"sent"}


def test_a_beat_killed_with_no_standby_opens_beat_has_no_leader(
    alerting_worker: RunningProcess, run_dir: Path
) -> None:
    beat = start_beat(log_dir=run_dir, env={"BEAT_LEADER_TTL": "2"})
    try:
        wait_for(
            lambda: get_redis().exists(redis_key(BEAT_LEADER_KEY)),
            timeout=30,
            what="beat to lead",
        )
        make_channel("signal", kind="signal")
        make_rule("beat", "beat_no_leader", duration=2, channels=("signal",))
        time.sleep(1.5)  # a few watch rounds that find beat leading
        assert not Incident.objects.exists()
        os.kill(beat.process.pid, signal.SIGKILL)
        beat.process.wait(timeout=10)
    finally:
        beat.stop()
    # The lock expires within its TTL (2 s), then T (2 s) without a leader, then a watch round.
    wait_for(
        lambda: Incident.objects.filter(subject="beat").exists(),
        timeout=20,
        what="the 'beat has no leader' incident",
    )
    incident = Incident.objects.get(subject="beat")
    assert incident.title.startswith("beat has had no leader for ")
    assert incident.resolved_at is None


def test_a_channel_answering_500_is_retried_and_its_failure_is_kept(
    alerting_worker: RunningProcess, receiver: Receiver
) -> None:
    receiver.status = 500
    make_channel("hook", kind="webhook", url=receiver.url)
    delivery = channel_test(name="hook")
    wait_for(
        lambda: NotificationDelivery.objects.get(pk=delivery.pk).status == "failed",
        timeout=30,
        what="the delivery to fail for good",
    )
    delivery.refresh_from_db()
    assert delivery.attempts == 3  # the first try and ALERTS_DELIVERY_RETRIES=2 more
    assert delivery.response_code == 500
    assert "500" in delivery.error
    assert len(receiver.received) == 3
