"""The admin site: Django's, with one check before any action runs on the rows a staff member
selected, and filters that answer a bad value with Django's "invalid filter" page, never a 500.

Django's admin filters the model by the selected values as they come (``pk__in=...``): a value
that is no id of the model (not a number, not a UUID, out of the column's range, a NUL) made
the database or the field raise, and every action of every model answered 500. Here such a
value is refused with a 400 before the action sees it. The check is mixed into every model
admin registered on the site, the project's and those of django-q2, django-axes and
``django.contrib.auth`` alike (``AdminSite.register``).

django-axes's "Clean up expired attempts" action failed on every call; its admin is replaced by
one whose action works (``LogisticsAdminConfig.ready``).
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.apps import AdminConfig
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.utils import timezone


class SelectionChecked:
    """``response_action`` only for selections of ids of the model."""

    def response_action(self, request: HttpRequest, queryset) -> HttpResponse | None:
        pk = self.model._meta.pk
        for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
            try:
                if "\x00" in value:
                    raise ValidationError("NUL")
                pk.run_validators(pk.to_python(value))  # the id's type, and the column's range or length
            except (ValidationError, ValueError, TypeError):
                return HttpResponseBadRequest(
                    f"{value[:100]!r} is not the id of any {self.model._meta.verbose_name}: nothing was done.\n",
                    content_type="text/plain; charset=utf-8")
        return super().response_action(request, queryset)


class FiltersChecked:
    """A changelist whose filters cannot be built is a bad query, never a 500.

    Django refuses most bad filter values itself (IncorrectLookupParameters: the changelist
    redirects to ``?e=1``), but not a date beyond what ``datetime`` holds: a date hierarchy's
    ``?created_at__year=2147483648`` raised OverflowError, ``?created_at__year=9999`` a
    ValueError while computing the year after; both were a 500 on every model admin with a
    date hierarchy (the dead letters, the audit runs, django-axes' logs, ...)."""

    def get_changelist_instance(self, request: HttpRequest):
        try:
            return super().get_changelist_instance(request)
        except (OverflowError, ValueError) as exc:
            raise IncorrectLookupParameters(exc) from exc


class AdminSite(admin.AdminSite):
    def register(self, model_or_iterable, admin_class=None, **options) -> None:
        admin_class = admin_class or admin.ModelAdmin
        if not issubclass(admin_class, SelectionChecked):
            admin_class = type(admin_class.__name__, (SelectionChecked, FiltersChecked, admin_class),
                               {"__module__": admin_class.__module__, "__doc__": admin_class.__doc__})
        super().register(model_or_iterable, admin_class, **options)


class LogisticsAdminConfig(AdminConfig):
    """``django.contrib.admin`` with ``AdminSite`` above as ``admin.site``."""

    default_site = "config.admin_site.AdminSite"

    def ready(self) -> None:
        super().ready()  # every installed app's admin.py, django-axes's among them
        from axes.admin import AccessAttemptAdmin
        from axes.models import AccessAttempt

        class AccessAttempts(AccessAttemptAdmin):
            @admin.action(description="Clean up expired attempts")
            def cleanup_expired_attempts(self, request, queryset):
                # django-axes 8.3 reads the time that axes sets on a request only while it
                # checks a login: AttributeError (500) on every other request
                request.axes_attempt_time = timezone.now()
                return super().cleanup_expired_attempts(request, queryset)

        admin.site.unregister(AccessAttempt)
        admin.site.register(AccessAttempt, AccessAttempts)
