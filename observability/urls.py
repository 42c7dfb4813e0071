"""The operators' pages and probes; config/urls.py includes this at the site root."""

from django.urls import path

from observability import views

app_name = "observability"

urlpatterns = [
    path("dashboard/", views.dashboard_page, name="dashboard"),
    path("dashboard/data.json", views.dashboard_data, name="dashboard-data"),
    path("dashboard/orders/<str:order_id>/journey/", views.journey_page, name="journey"),
    path("dashboard/orders/<str:order_id>/journey.json", views.journey_data, name="journey-data"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
    path("favicon.ico", views.favicon, name="favicon"),
]
