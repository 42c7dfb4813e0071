"""The course's customer service (port 5002): the URLconf of a process started with TUTORIAL_API=tracking."""

from django.urls import path

from course.api import CourseTrackingApi

urlpatterns = [
    path("tracking/<str:shipment_id>", CourseTrackingApi.as_view(), name="course-tracking"),
]

handler400 = "course.api.bad_request"
handler404 = "course.api.not_found"
handler500 = "course.api.server_error"
