"""The payments API; included under "api/" by config/urls.py."""

from django.urls import path

from payments.api import PaymentDetailApi, PaymentListApi

urlpatterns = [
    path("payments/", PaymentListApi.as_view(), name="payment-list"),
    path("payments/<str:payment_id>/", PaymentDetailApi.as_view(), name="payment-detail"),
]
