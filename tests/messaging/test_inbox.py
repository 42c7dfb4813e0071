"""The inbox insert (messaging.inbox): a duplicate is known without an exception, on both engines."""

import pytest
from django.conf import settings
from django.db import transaction

from messaging.inbox import processed_records
from messaging.models import ProcessedMessage

DATABASES = [alias for alias in ("default", "sqlite") if alias in settings.DATABASES]

pytestmark = pytest.mark.django_db(databases=DATABASES)


@pytest.mark.parametrize("using", DATABASES)
def test_messages_recorded_before_or_repeated_are_not_recorded_again(using):
    # given: m-1 handled before by this consumer, and by another consumer
    with transaction.atomic(using=using):
        processed_records(consumer="warehouse.new_orders", message_ids=["m-1"], using=using)
        processed_records(consumer="support.support_requests", message_ids=["m-2"], using=using)
    # when: m-1, m-2, m-3 and m-3 again, in one transaction
    with transaction.atomic(using=using):
        new = processed_records(consumer="warehouse.new_orders", message_ids=["m-1", "m-2", "m-3", "m-3"],
                                using=using)
        again = processed_records(consumer="warehouse.new_orders", message_ids=["m-3"], using=using)
    # then: only the new ones; the transaction went on after the duplicates
    assert (new, again) == ({"m-2", "m-3"}, set())
    records = ProcessedMessage.objects.using(using).order_by("consumer", "message_id").values_list(
        "consumer", "message_id")
    assert list(records) == [("support.support_requests", "m-2"), ("warehouse.new_orders", "m-1"),
                             ("warehouse.new_orders", "m-2"), ("warehouse.new_orders", "m-3")]


@pytest.mark.parametrize("using", DATABASES)
def test_records_rolled_back_with_their_handlers_leave_the_messages_new(using):
    # given: the handlers' transaction fails after the records were written
    with pytest.raises(RuntimeError), transaction.atomic(using=using):  # noqa: PT012 - the raise rolls the transaction back
        assert processed_records(consumer="c", message_ids=["m-4", "m-5"], using=using) == {"m-4", "m-5"}
        raise RuntimeError("a handler failed")
    # when: the messages come again
    with transaction.atomic(using=using):
        retried = processed_records(consumer="c", message_ids=["m-4", "m-5"], using=using)
    # then
    assert retried == {"m-4", "m-5"}
    assert ProcessedMessage.objects.using(using).filter(consumer="c").count() == 2
