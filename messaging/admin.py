"""What messages wrote, shown read-only: outbox rows and processed records cannot be added,
changed or deleted by hand. Dead letters are re-driven through an action that calls a service."""

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from config.admin_readonly import ReadOnlyAdmin, ReadOnlyInline
from config.errors import DomainError
from messaging.bounded_json import json_loads_bounded
from messaging.models import DeadLetter, DeadLetterChange, OutboxMessage, ProcessedMessage
from messaging.services import dead_letter_edit, dead_letters_redrive


class RelayStateFilter(admin.SimpleListFilter):
    title = "relay"
    parameter_name = "relay"

    def lookups(self, request, model_admin):
        return [("waiting", "waiting to be published"), ("published", "published")]

    def queryset(self, request, queryset):
        if self.value() == "waiting":
            return queryset.filter(published_at__isnull=True)
        if self.value() == "published":
            return queryset.filter(published_at__isnull=False)
        return queryset


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdmin):
    list_display = ["id", "type", "queue", "correlation_id", "producer", "created_at", "next_attempt_at",
                    "published_at", "attempts"]
    list_filter = ["queue", "type", RelayStateFilter]
    search_fields = ["correlation_id", "message_id", "causation_id"]


@admin.register(ProcessedMessage)
class ProcessedMessageAdmin(ReadOnlyAdmin):
    list_display = ["consumer", "message_id", "processed_at"]
    list_filter = ["consumer"]
    search_fields = ["message_id"]


class DeadLetterChangeInline(ReadOnlyInline):
    """The letter's trail: every edit and re-drive, who and when, the body before and after."""

    model = DeadLetterChange
    fields = readonly_fields = ("at", "action", "by", "body_before", "body_after")


class PayloadForm(forms.Form):
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 16, "cols": 100, "spellcheck": "false"}),
                           help_text="The message's JSON payload; it must keep its type's contract.")


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    list_display = ["id", "queue", "type", "reason", "short_error", "attempts", "created_at", "redriven_at"]
    list_filter = ["queue", "type", "reason", ("redriven_at", admin.EmptyFieldListFilter)]
    search_fields = ["message_id", "correlation_id", "error"]
    date_hierarchy = "created_at"
    readonly_fields = ["edit_payload"]
    inlines = [DeadLetterChangeInline]
    actions = ["redrive"]

    @admin.display(description="error")
    def short_error(self, obj: DeadLetter) -> str:
        return obj.error[:120]

    @admin.display(description="payload")
    def edit_payload(self, obj: DeadLetter) -> str:
        if obj.redriven_at is not None:
            return "re-driven: the payload stays as it was sent"
        return format_html('<a href="{}">Edit the payload before re-driving</a>',
                           reverse("admin:messaging_deadletter_payload", args=[obj.pk]))

    @admin.action(description="Re-drive selected dead letters (once each)", permissions=["redrive"])
    def redrive(self, request, queryset):
        count, problems = dead_letters_redrive(dead_letter_ids=list(queryset.values_list("pk", flat=True)),
                                               by=request.user.get_username())
        self.message_user(request, f"{count} message(s) sent back to their queue.", messages.SUCCESS)
        for problem in problems:
            self.message_user(request, problem, messages.WARNING)

    def has_redrive_permission(self, request) -> bool:
        # Re-driving sends a message again: the model's change permission, though no field can be changed.
        return request.user.has_perm("messaging.change_deadletter")

    def get_urls(self):
        return [path("<int:pk>/payload/", self.admin_site.admin_view(self.payload_view),
                     name="messaging_deadletter_payload"), *super().get_urls()]

    def payload_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Edit a parked message's payload (checked against its contract; recorded in its trail)."""
        if not self.has_redrive_permission(request):
            raise PermissionDenied
        letter = DeadLetter.objects.filter(pk=pk).first()
        if letter is None:
            raise Http404("no such dead letter")
        if request.method == "POST":
            form = PayloadForm(request.POST)
            if form.is_valid():
                try:
                    dead_letter_edit(dead_letter_id=pk, body=form.cleaned_data["body"], by=request.user.get_username())
                except DomainError as exc:
                    form.add_error("body", exc.message)
                else:
                    self.message_user(request, "Payload saved. Re-drive the letter to send it.", messages.SUCCESS)
                    return HttpResponseRedirect(reverse("admin:messaging_deadletter_change", args=[pk]))
        else:
            try:
                initial = json.dumps(json_loads_bounded(letter.body), indent=2, ensure_ascii=False)
            except ValueError:  # no JSON, or nested too deep to walk: shown as it came
                initial = letter.body
            form = PayloadForm(initial={"body": initial})
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "original": letter,
                   "form": form, "title": f"Edit the payload of dead letter #{letter.pk}"}
        return TemplateResponse(request, "admin/messaging/deadletter/payload.html", context, status=200)
