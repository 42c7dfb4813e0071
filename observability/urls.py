"""/dashboard/ and the order journeys (staff); included under "dashboard/" by config/urls.py."""

from django.urls import path

from observability import views

app_name = "observability"

urlpatterns = [
    path("", views.dashboard_page, name="dashboard"),
    path("data.json", views.dashboard_data, name="dashboard-data"),
    path("orders/<str:order_id>/journey/", views.journey_page, name="journey"),
    path("orders/<str:order_id>/journey.json", views.journey_data, name="journey-data"),
]
