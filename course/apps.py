from django.apps import AppConfig


class CourseConfig(AppConfig):
    """The course's own API (its Flask e-shop and customer service), served by `make tutorial`."""

    name = "course"
    verbose_name = "The course's API (make tutorial)"
