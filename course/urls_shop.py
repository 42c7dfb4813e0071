"""The course's e-shop (port 5001): the URLconf of a process started with TUTORIAL_API=shop."""

from django.urls import path

from course.api import CourseOrderApi, CourseOrderPlaceApi

urlpatterns = [
    path("orders", CourseOrderPlaceApi.as_view(), name="course-orders"),
    path("orders/<str:order_id>", CourseOrderApi.as_view(), name="course-order"),
]

handler400 = "course.api.bad_request"
handler404 = "course.api.not_found"
handler500 = "course.api.server_error"
