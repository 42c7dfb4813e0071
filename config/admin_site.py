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

The site is titled as the product, lists its apps in the order the work goes through them
(the shop first, the libraries' bookkeeping last), and a page on which nothing can be changed
offers no Save.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.apps import AdminConfig
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.utils import timezone

if TYPE_CHECKING:  # the mixins below go in front of a ModelAdmin (AdminSite.register)
    _ModelAdmin = admin.ModelAdmin[Any]
else:
    _ModelAdmin = object


class SelectionChecked(_ModelAdmin):
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


class ReadOnlyPagesWithoutSave(_ModelAdmin):
    """A change page whose form has no field left to edit (every field read-only, no inline
    that takes input) shows no Save buttons: there is nothing to save."""

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if change and not _takes_input(context):
            context.update(show_save=False, show_save_and_continue=False, show_save_and_add_another=False,
                           show_save_as_new=False)
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)


def _takes_input(context: dict) -> bool:
    form = context.get("adminform")
    if form is not None and any(not field.is_hidden for field in form.form):
        return True
    for inline in context.get("inline_admin_formsets", []):
        if inline.has_add_permission or any(not field.is_hidden for f in inline.formset.forms for field in f):
            return True
    return False


# The apps in the order the work goes through them; the libraries' own last.
APP_ORDER = ("shop", "warehouse", "transport", "support", "payments", "messaging", "observability", "auth",
             "knox", "axes", "django_q")


class FiltersChecked(_ModelAdmin):
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
    site_header = "Logistics platform: operations"
    site_title = "Logistics platform"
    index_title = "Orders, stock, shipments and messages"

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[dict]:
        apps = super().get_app_list(request, app_label)
        rank = {label: i for i, label in enumerate(APP_ORDER)}
        return sorted(apps, key=lambda app: (rank.get(app["app_label"], len(rank)), app["name"]))

    def register(self, model_or_iterable, admin_class=None, **options) -> None:
        admin_class = admin_class or admin.ModelAdmin
        if not issubclass(admin_class, SelectionChecked):
            bases = (SelectionChecked, FiltersChecked, ReadOnlyPagesWithoutSave, admin_class)
            admin_class = type(admin_class.__name__, bases,
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
