"""The payment provider is asked with no lock held and no transaction open, concurrently, with
idempotency keys: a slow provider holds no payment, and a crash between its answer and the
record charges nothing twice. Real worker processes, the real broker, PostgreSQL."""

import time
import uuid
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection

from messaging.models import OutboxMessage, ProcessedMessage
from payments.models import Payment
from payments.provider import SimulatedPaymentProvider, provider_store_asked
from payments.services import payment_request
from tests.harness import System, wait_until

pytestmark = pytest.mark.e2e

AMOUNT = Decimal("119.99")


def pending_payments(count: int, monkeypatch) -> list[Payment]:
    monkeypatch.setattr(settings, "SIM_TIME_SCALE", 0)  # their charge timers due at once
    return [payment_request(order_id=uuid.uuid4(), amount=AMOUNT, currency="EUR", method="credit_card")
            for _ in range(count)]


def timers_on_the_queue(system: System, payments: list[Payment]) -> None:
    """The relay publishes the payments' charge timers, then stops: nothing else touches the
    database while the worker runs."""
    system.start("relay")
    wait_until(lambda: not OutboxMessage.objects.filter(type="payment.charge_due", published_at__isnull=True).exists(),
               timeout=60, what="charge timers published")
    system.kill("relay", sig=15)


def captured(payments: list[Payment]) -> int:
    return Payment.objects.filter(pk__in=[p.pk for p in payments], status="captured").count()


def worker_locks_and_transactions() -> tuple[int, int]:
    """Locks on payments_payment and transactions left open, by any backend but this test's."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE relation = 'payments_payment'::regclass "
                       "AND pid <> pg_backend_pid()")
        locks = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND pid <> pg_backend_pid() AND (state LIKE 'idle in transaction%%' "
                       "OR (state = 'active' AND xact_start IS NOT NULL AND query ILIKE '%%payments_payment%%'))")
        return locks, cursor.fetchone()[0]


def test_twenty_payments_with_a_two_second_provider_are_answered_together_and_nothing_is_locked_meanwhile(
        transactional_db, broker, monkeypatch):
    # given: 20 pending payments whose charge timers wait on payment_requests; a provider of 2 s a call
    payments = pending_payments(20, monkeypatch)
    system = System(env={"PAYMENT_PROVIDER_LATENCY": "2", "CONSUMER_TRANSACTION_BATCH": "20"})
    try:
        timers_on_the_queue(system, payments)
        # when: the worker takes them
        system.start("payment_requests")
        ids = [p.pk for p in payments]
        wait_until(lambda: Payment.objects.filter(pk__in=ids, charge_attempt=1).exists(), timeout=60,
                   interval=0.05, what="the first charge asked")
        asked_at = time.monotonic()
        # then: while the provider answers (the middle of its 2 s), the worker holds no lock on
        # payments and no transaction open
        samples = []
        while time.monotonic() - asked_at < 1.5:
            time.sleep(0.1)
            if time.monotonic() - asked_at >= 0.3:
                samples.append(worker_locks_and_transactions())
        wait_until(lambda: captured(payments) == 20, timeout=60, interval=0.05, what="20 payments captured")
        seconds = time.monotonic() - asked_at
    finally:
        system.stop_all()
    assert len(samples) >= 5
    assert set(samples) == {(0, 0)}
    assert seconds < 10  # 20 calls of 2 s one after the other would take 40
    for payment in Payment.objects.filter(pk__in=ids):
        assert provider_store_asked(f"{payment.pk}:1") == (1, payment.provider_reference)
    assert OutboxMessage.objects.filter(queue="payment_results", type="payment.captured",
                                        correlation_id__in=[str(p.order_id) for p in payments]).count() == 20
    print(f"20 payments, provider 2 s a call: answered in {seconds:.1f} s after the first was asked; "
          f"{len(samples)} samples of pg_locks/pg_stat_activity meanwhile, none with a lock or open transaction")


def test_a_worker_killed_after_the_provider_charged_asks_again_with_the_same_key_and_charges_once(
        transactional_db, broker, monkeypatch):
    # given: a pending payment; its worker dies right after the provider charged, before the record
    [payment] = pending_payments(1, monkeypatch)
    system = System()
    try:
        timers_on_the_queue(system, [payment])
        [crashing] = system.start("payment_requests", env={"FAULT_INJECTION": "payments.after_provider=1"})
        crashing.wait(timeout=60)
        payment.refresh_from_db()
        assert (crashing.returncode, payment.status, payment.charge_attempt) == (-9, "pending", 1)
        [(asked, reference)] = [provider_store_asked(f"{payment.pk}:1")]
        assert asked == 1
        assert reference.startswith("PAY-")
        # when: a worker again, and the timer redelivered
        system.start("payment_requests")
        wait_until(lambda: captured([payment]) == 1, timeout=60, what="payment captured")
    finally:
        system.stop_all()
    # then: asked again with the same key, the same answer recorded once
    payment.refresh_from_db()
    assert provider_store_asked(f"{payment.pk}:1") == (2, reference)
    assert provider_store_asked(f"{payment.pk}:2") is None
    assert payment.provider_reference == reference
    assert list(OutboxMessage.objects.filter(queue="payment_results", correlation_id=str(payment.order_id))
                .values_list("type", "payload__reference")) == [("payment.captured", reference)]
    assert ProcessedMessage.objects.filter(consumer="payments.payment_requests").count() == 1


def test_a_worker_killed_after_the_record_before_the_ack_changes_nothing_on_redelivery(
        transactional_db, broker, monkeypatch):
    # given: the answer recorded and committed, the worker killed before its ack
    [payment] = pending_payments(1, monkeypatch)
    system = System()
    try:
        timers_on_the_queue(system, [payment])
        [crashing] = system.start("payment_requests", env={"FAULT_INJECTION": "consumer.after_commit=1"})
        crashing.wait(timeout=60)
        assert crashing.returncode == -9
        assert captured([payment]) == 1
        # when: the timer redelivered to a new worker
        system.start("payment_requests")
        wait_until(lambda: _duplicate_logged(system), timeout=60, what="the redelivery found a duplicate")
    finally:
        system.stop_all()
    # then: the provider was not asked again, one answer
    payment.refresh_from_db()
    assert provider_store_asked(f"{payment.pk}:1") == (1, payment.provider_reference)
    assert OutboxMessage.objects.filter(queue="payment_results", correlation_id=str(payment.order_id)).count() == 1


def _duplicate_logged(system: System) -> bool:
    return any("outcome=duplicate" in path.read_text(errors="replace")
               for path in system.log_dir.glob("payment_requests-*.log"))


def test_the_simulated_provider_answers_a_key_the_same_across_instances_and_a_void_cancels_a_charge_to_come():
    # given: two providers (two worker processes, or one restarted) on the same store
    key, late = f"{uuid.uuid4()}:1", f"{uuid.uuid4()}:1"
    first, second = SimulatedPaymentProvider(), SimulatedPaymentProvider()
    # when
    one = first.charge(idempotency_key=key, amount=AMOUNT, currency="EUR", method="credit_card")
    again = second.charge(idempotency_key=key, amount=AMOUNT, currency="EUR", method="credit_card")
    void = first.void(idempotency_key=f"void-{late}", charge_key=late)
    after_void = second.charge(idempotency_key=late, amount=AMOUNT, currency="EUR", method="credit_card")
    # then
    assert one == again
    assert one.approved
    assert one.reference.startswith("PAY-")
    assert provider_store_asked(key) == (2, one.reference)
    assert void.approved
    assert void.reference.startswith("VOID-")
    assert (after_void.approved, after_void.voided, after_void.reason) == (False, True, "voided before capture")
