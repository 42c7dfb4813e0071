"""What messages wrote, shown read-only: outbox rows and processed records cannot be added,
changed or deleted by hand. Dead letters are re-driven through an action that calls a service."""

from django.contrib import admin, messages

from messaging.models import DeadLetter, OutboxMessage, ProcessedMessage
from messaging.services import dead_letters_redrive


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


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


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    list_display = ["id", "queue", "type", "reason", "short_error", "attempts", "created_at", "redriven_at"]
    list_filter = ["queue", "reason", ("redriven_at", admin.EmptyFieldListFilter)]
    search_fields = ["message_id", "correlation_id", "error"]
    actions = ["redrive"]

    @admin.display(description="error")
    def short_error(self, obj: DeadLetter) -> str:
        return obj.error[:120]

    @admin.action(description="Re-drive selected dead letters (once each)", permissions=["redrive"])
    def redrive(self, request, queryset):
        count, problems = dead_letters_redrive(dead_letter_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} message(s) sent back to their queue.", messages.SUCCESS)
        for problem in problems:
            self.message_user(request, problem, messages.WARNING)

    def has_redrive_permission(self, request) -> bool:
        # Re-driving sends a message again: the model's change permission, though no field can be changed.
        return request.user.has_perm("messaging.change_deadletter")
