"""The batch admin: a batch's bar, counters, callbacks and latest members; the
members themselves are a link to the job list filtered to the batch."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from django_jobprogress.admin.actions import ACTION_LIMIT
from django_jobprogress.admin.base import ConsoleAdmin
from django_jobprogress.admin.display import (
    badge,
    job_label,
    or_empty,
    pretty_json,
    task_html,
    timeline_html,
)
from django_jobprogress.models import Batch, JobRecord

if TYPE_CHECKING:  # Django's admin classes take type arguments only in the stubs
    BatchAdminBase = admin.ModelAdmin[Batch]
else:
    BatchAdminBase = admin.ModelAdmin

#: Batch members shown on the batch's page (the rest are a link away).
MEMBERS_SHOWN = 20


class BatchAdmin(ConsoleAdmin, BatchAdminBase):
    """Batches: read-only, cancelled as a whole, deleted only once finished."""

    list_display = ("name", "status_badge", "done", "failed", "cancelled", "members", "created_at")
    list_filter = ("status",)
    search_fields = ("=id", "name")
    search_help_text = gettext_lazy("A batch's id, or part of its name.")
    sortable_by = ("created_at",)
    actions = ["cancel_batches"]
    readonly_fields = [
        *(f.name for f in Batch._meta.fields),
        "status_badge",
        "counters",
        "callbacks",
        "timeline",
        "callback_kwargs_json",
    ]
    fieldsets = [
        (None, {"fields": ["name", "status_badge", "owner", "sealed", "allow_failures"]}),
        (gettext_lazy("Members"), {"fields": ["counters"]}),
        (gettext_lazy("Callbacks"), {"fields": ["callbacks"]}),
        (gettext_lazy("Timeline"), {"fields": ["timeline"]}),
        (
            gettext_lazy("Callback arguments"),
            {"classes": ["collapse"], "fields": ["callback_kwargs_json"]},
        ),
    ]

    class Media:
        css = {"all": ["django_jobprogress/admin.css"]}

    def has_delete_permission(self, request: HttpRequest, obj: Batch | None = None) -> bool:
        """Never for an unfinished batch: its callbacks have yet to run."""
        if obj is not None and not obj.is_finished:
            return False
        return super().has_delete_permission(request, obj)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        """A UUID finds that batch by its primary key, anything else searches names."""
        found = self.search_by_id(queryset, search_term)
        if found is not None:
            return found, False
        return queryset.filter(name__icontains=search_term.strip()), False

    def members_url(self, batch: Batch, **params: str) -> str:
        changelist = reverse(f"{self.admin_site.name}:django_jobprogress_jobrecord_changelist")
        return f"{changelist}?{urlencode({'batch__id__exact': str(batch.pk), **params})}"

    @admin.display(description=gettext_lazy("status"))
    def status_badge(self, obj: Batch) -> SafeString:
        return badge(obj)

    @admin.display(description=gettext_lazy("done"))
    def done(self, obj: Batch) -> str:
        finished = obj.succeeded + obj.failed + obj.cancelled
        return _("%(done)s of %(total)s") % {"done": finished, "total": obj.total}

    @admin.display(description=gettext_lazy("members"))
    def members(self, obj: Batch) -> SafeString:
        return format_html('<a href="{}">{}</a>', self.members_url(obj), _("list"))

    @admin.display(description=gettext_lazy("counts"))
    def counters(self, obj: Batch) -> SafeString:
        live = obj.live_counts()
        rows = [
            (_("all"), obj.total, {}),
            (_("pending"), live["pending"], {"status__exact": "pending"}),
            (_("running"), live["running"], {"status__exact": "running"}),
            (_("succeeded"), obj.succeeded, {"status__exact": "completed"}),
            (_("failed"), obj.failed, {"status__exact": "failed"}),
            (_("cancelled"), obj.cancelled, {"status__exact": "cancelled"}),
        ]
        cells = format_html_join(
            "",
            '<tr><th scope="row">{}</th><td><a href="{}">{}</a></td></tr>',
            ((what, self.members_url(obj, **params), count) for what, count, params in rows),
        )
        return format_html('<table class="jp-counters"><tbody>{}</tbody></table>', cells)

    @admin.display(description=gettext_lazy("callbacks"))
    @or_empty
    def callbacks(self, obj: Batch) -> SafeString | None:
        rows = []
        for name, label in (
            ("on_complete", _("on complete")),
            ("on_success", _("on success")),
            ("on_failure", _("on failure")),
        ):
            task_name = getattr(obj, name)
            if not task_name:
                continue
            enqueued_at = getattr(obj, f"{name}_enqueued_at")
            when: Any = _("not enqueued")
            if enqueued_at is not None:
                when = formats.localize(timezone.localtime(enqueued_at))
                job = callback_job(obj, task_name, enqueued_at)
                if job is not None:
                    url = reverse(
                        f"{self.admin_site.name}:django_jobprogress_jobrecord_change",
                        args=[quote(job.pk)],
                    )
                    when = format_html(
                        '{} <a href="{}">{}</a> {}', when, url, job_label(job), badge(job)
                    )
            rows.append((label, task_html(task_name), when))
        if not rows:
            return None
        cells = format_html_join("", "<tr><th>{}</th><td>{}</td><td>{}</td></tr>", rows)
        return format_html('<table class="jp-callbacks"><tbody>{}</tbody></table>', cells)

    @admin.display(description=gettext_lazy("timeline"))
    @or_empty
    def timeline(self, obj: Batch) -> SafeString | None:
        return timeline_html(
            [
                (_("created"), obj.created_at, ""),
                (_("cancel requested"), obj.cancel_requested_at, ""),
                (_("finished"), obj.finished_at, ""),
            ]
        )

    @admin.display(description=gettext_lazy("callback arguments"))
    def callback_kwargs_json(self, obj: Batch) -> SafeString:
        return pretty_json(obj.callback_kwargs)

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Batch | None = None,
    ) -> HttpResponse:
        if obj is not None and request.user.has_perm("django_jobprogress.view_jobrecord"):
            fields = (
                "id",
                "task_name",
                "status",
                "progress",
                "stage",
                "cancel_requested_at",
                "batch",
            )
            members = obj.jobs.only(*fields).order_by("-created_at", "-id")[:MEMBERS_SHOWN]
            context.update(
                jp_members=[
                    {
                        "record": member,
                        "task": task_html(member.task_name),
                        "status": badge(member),
                        "percent": int(member.progress * 100),
                        "url": reverse(
                            f"{self.admin_site.name}:django_jobprogress_jobrecord_change",
                            args=[quote(member.pk)],
                        ),
                    }
                    for member in members
                ],
                jp_members_url=self.members_url(obj),
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.action(description=gettext_lazy("Cancel selected batches"), permissions=["cancel"])
    def cancel_batches(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        cancelled = 0
        for batch in queryset[:ACTION_LIMIT]:
            if batch.request_cancel(by=request.user):
                cancelled += 1
                self.log_change(request, batch, _("Cancel requested."))
        self.message_user(
            request,
            ngettext("%d batch cancelled.", "%d batches cancelled.", cancelled) % cancelled,
            messages.SUCCESS if cancelled else messages.WARNING,
        )


def callback_job(batch: Batch, task_name: str, enqueued_at: datetime) -> JobRecord | None:
    """The job a batch's callback was enqueued as: of that task, created just after
    the claim, with the batch's snapshot as its first argument (task index)."""
    return (
        JobRecord.objects.filter(
            task_name=task_name,
            created_at__gte=enqueued_at,
            created_at__lt=enqueued_at + timedelta(minutes=5),
            args__0__id=str(batch.pk),
        )
        .only("id", "task_name", "status", "cancel_requested_at")
        .order_by("created_at")
        .first()
    )
