"""A job's page: its live bar and buttons first, then its fields in sections
(outcome, timeline, run, and folded, limits and arguments)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import formats
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from django_jobprogress.admin.actions import RETRYABLE, JobActions
from django_jobprogress.admin.display import (
    badge,
    duration,
    job_label,
    or_empty,
    preformatted,
    pretty_json,
    short_name,
    task_html,
    timeline_html,
)
from django_jobprogress.models import JobRecord

#: Retries of a job its page links to.
RETRIES_SHOWN = 20


class JobPage(JobActions):
    """The job admin's change page (read-only: jobs write their rows)."""

    readonly_fields = [
        *(f.name for f in JobRecord._meta.fields),
        "task_full",
        "status_badge",
        "progress_summary",
        "fields_json",
        "result_json",
        "error_text",
        "traceback_text",
        "timeline",
        "attempts_summary",
        "worker",
        "batch_link",
        "retry_of_link",
        "retries",
        "args_json",
        "kwargs_json",
    ]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "task_full",
                    "status_badge",
                    "progress_summary",
                    "stage",
                    "message",
                    "fields_json",
                ]
            },
        ),
        (gettext_lazy("Outcome"), {"fields": ["result_json", "error_text", "traceback_text"]}),
        (gettext_lazy("Timeline"), {"fields": ["timeline"]}),
        (
            gettext_lazy("Run"),
            {
                "fields": [
                    "attempts_summary",
                    "worker",
                    "queue",
                    "key",
                    "owner",
                    "batch_link",
                    "retry_of_link",
                    "retries",
                    "queue_task_id",
                ]
            },
        ),
        (
            gettext_lazy("Limits"),
            {
                "classes": ["collapse"],
                "fields": [
                    "cancellable",
                    "cancel_threshold",
                    "stall_timeout",
                    "progress_timeout",
                    "max_attempts",
                ],
            },
        ),
        (
            gettext_lazy("Arguments"),
            {"classes": ["collapse"], "fields": ["args_json", "kwargs_json"]},
        ),
    ]

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: JobRecord | None = None,
    ) -> HttpResponse:
        if obj is not None:
            name = f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}"
            context.update(
                jp_task=task_html(obj.task_name),
                jp_status=badge(obj),
                jp_can_cancel=self.has_cancel_permission(request)
                and obj.can_be_cancelled
                and obj.cancel_requested_at is None,
                jp_can_retry=self.has_retry_permission(request) and obj.status in RETRYABLE,
                jp_cancel_url=reverse(f"{name}_cancel", args=[quote(obj.pk)]),
                jp_retry_url=reverse(f"{name}_retry", args=[quote(obj.pk)]),
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.display(description=gettext_lazy("status"))
    def status_badge(self, obj: JobRecord) -> SafeString:
        return badge(obj)

    @admin.display(description=gettext_lazy("task"))
    def task_full(self, obj: JobRecord) -> SafeString:
        return format_html("{} <code>{}</code>", short_name(obj.task_name), obj.task_name)

    @admin.display(description=gettext_lazy("progress"))
    def progress_summary(self, obj: JobRecord) -> str:
        percent = int(obj.progress * 100)
        if obj.total is None:
            return f"{percent}%"
        return _("%(percent)d%% (%(current)s of %(total)s)") % {
            "percent": percent,
            "current": formats.number_format(obj.current, force_grouping=True),
            "total": formats.number_format(obj.total, force_grouping=True),
        }

    @admin.display(description=gettext_lazy("status fields"))
    @or_empty
    def fields_json(self, obj: JobRecord) -> SafeString | None:
        return pretty_json(obj.fields) if obj.fields else None

    @admin.display(description=gettext_lazy("result"))
    @or_empty
    def result_json(self, obj: JobRecord) -> SafeString | None:
        if obj.result is None and obj.status != JobRecord.Status.COMPLETED:
            return None
        return pretty_json(obj.result)

    @admin.display(description=gettext_lazy("error"))
    @or_empty
    def error_text(self, obj: JobRecord) -> SafeString | None:
        return preformatted(obj.error, "jp-pre--error") if obj.error else None

    @admin.display(description=gettext_lazy("traceback"))
    @or_empty
    def traceback_text(self, obj: JobRecord) -> SafeString | None:
        return preformatted(obj.traceback) if obj.traceback else None

    @admin.display(description=gettext_lazy("timeline"))
    @or_empty
    def timeline(self, obj: JobRecord) -> SafeString | None:
        ran = ""
        if obj.started_at and obj.finished_at:
            seconds = (obj.finished_at - obj.started_at).total_seconds()
            ran = _("after %(duration)s") % {"duration": duration(seconds)}
        by = ""
        if obj.cancel_requested_at and obj.cancel_requested_by_id:
            by = _("by %(user)s") % {"user": obj.cancel_requested_by}
        return timeline_html(
            [
                (_("created"), obj.created_at, ""),
                (_("scheduled for"), obj.scheduled_for, ""),
                (_("started"), obj.started_at, ""),
                (_("last progress"), obj.progress_at, ""),
                (_("last heartbeat"), obj.heartbeat_at, ""),
                (_("cancel requested"), obj.cancel_requested_at, by),
                (_("finished"), obj.finished_at, ran),
            ]
        )

    @admin.display(description=gettext_lazy("attempts"))
    def attempts_summary(self, obj: JobRecord) -> str:
        return _("%(attempts)d of %(max)d") % {"attempts": obj.attempts, "max": obj.max_attempts}

    @admin.display(description=gettext_lazy("worker"))
    @or_empty
    def worker(self, obj: JobRecord) -> str | None:
        if obj.worker_pid is None:
            return obj.worker_host or None
        return _("%(host)s, pid %(pid)s") % {"host": obj.worker_host, "pid": obj.worker_pid}

    @admin.display(description=gettext_lazy("batch"))
    @or_empty
    def batch_link(self, obj: JobRecord) -> SafeString | None:
        if obj.batch_id is None:
            return None
        batch = obj.batch
        if batch is None:
            return None
        url = reverse(
            f"{self.admin_site.name}:django_jobprogress_batch_change", args=[quote(batch.pk)]
        )
        return format_html('<a href="{}">{}</a> {}', url, batch.name, badge(batch))

    @admin.display(description=gettext_lazy("retry of"))
    @or_empty
    def retry_of_link(self, obj: JobRecord) -> SafeString | None:
        if obj.retry_of is None:
            return None
        original = JobRecord.objects.filter(pk=obj.retry_of).only("id", "task_name", "status")
        record = original.first()
        if record is None:  # pruned since
            return format_html("<code>{}</code> ({})", obj.retry_of, _("deleted"))
        return self._job_link(record)

    @admin.display(description=gettext_lazy("retries"))
    @or_empty
    def retries(self, obj: JobRecord) -> SafeString | None:
        fields = ("id", "task_name", "status", "cancel_requested_at", "created_at")
        records = JobRecord.objects.filter(retry_of=obj.pk).only(*fields).order_by("created_at")
        links = [self._job_link(record) for record in records[:RETRIES_SHOWN]]
        if not links:
            return None
        return format_html_join(", ", "{}", ((link,) for link in links))

    def _job_link(self, record: JobRecord) -> SafeString:
        return format_html(
            '<a href="{}">{}</a> {}', self.change_url(record.pk), job_label(record), badge(record)
        )

    @admin.display(description=gettext_lazy("arguments"))
    def args_json(self, obj: JobRecord) -> SafeString:
        return pretty_json(obj.args)

    @admin.display(description=gettext_lazy("keyword arguments"))
    def kwargs_json(self, obj: JobRecord) -> SafeString:
        return pretty_json(obj.kwargs)
