"""What a staff read of one model shares between its list and its detail view: who may read
(``permission_classes``), how a row is shown (``serializer_class``) and where the rows come
from (``rows``, the app's selector). An app names these once and derives both views::

    class PaymentReadApi(ReadApi):
        permission_classes = [CanViewPayments]
        serializer_class = PaymentRecordOut
        rows = staticmethod(payment_list)

    class PaymentListApi(PaymentReadApi, generics.ListAPIView): ...
    class PaymentDetailApi(PaymentReadApi, generics.RetrieveAPIView): ...

A lookup that names no row, a malformed id among them, is 404 (DRF's ``get_object_or_404``
turns the database's refusal of a malformed id into one).
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db.models import QuerySet
from rest_framework import generics


class ReadApi(generics.GenericAPIView):
    rows: ClassVar[staticmethod[[], QuerySet[Any]]]

    def get_queryset(self) -> QuerySet[Any]:
        return self.rows()
