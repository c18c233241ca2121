"""The demo's notices in the admin, each linked to the batch whose callback wrote it."""

from django.contrib import admin
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from example_project.demo.models import Notice


@admin.register(Notice)
class NoticeAdmin(admin.ModelAdmin):
    list_display = ("text", "user", "batch_link", "created_at")
    list_filter = ("created_at",)
    search_fields = ("text", "=batch_id", "user__username")
    date_hierarchy = "created_at"
    list_select_related = ("user",)
    readonly_fields = ("user", "batch_link", "text", "created_at")
    fields = readonly_fields

    @admin.display(description="batch", ordering="batch_id")
    def batch_link(self, obj):
        try:
            url = reverse("admin:django_jobprogress_batch_change", args=[obj.batch_id])
        except NoReverseMatch:
            return str(obj.batch_id)
        return format_html('<a href="{}">{}</a>', url, obj.batch_id)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
