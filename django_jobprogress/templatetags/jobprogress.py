"""``{% load jobprogress %}{% progress_bar job %}``: a live, accessible progress bar."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from django import template
from django.urls import NoReverseMatch, get_script_prefix, reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from django_jobprogress import access
from django_jobprogress.models import Batch, JobRecord
from django_jobprogress.snapshots import batch_snapshot

register = template.Library()

SIZES = ("sm", "md", "lg")
PATHS = {"job": "jobs", "batch": "batches"}


def _tracked(obj: Any) -> JobRecord | Batch | None:
    """The JobRecord or Batch named by ``obj`` (an instance or an id), or None when
    it names neither (an unknown id, or not an id at all: "", None, 42)."""
    if isinstance(obj, JobRecord | Batch):
        return obj
    try:
        pk = UUID(str(obj))
    except ValueError:
        return None
    return JobRecord.objects.filter(pk=pk).first() or Batch.objects.filter(pk=pk).first()


def batch_summary(snapshot: dict[str, Any]) -> str:
    """ "7 of 10 done, 1 failed": the line a batch shows where a job shows its message
    (the static JS writes the same line, from the same translated texts)."""
    done = snapshot["succeeded"] + snapshot["failed"] + snapshot["cancelled"]
    line = LABELS["done"] % {"done": done, "total": snapshot["total"]}
    for name in ("failed", "cancelled"):
        if snapshot[name]:
            line += LABELS[f"n_{name}"] % {"n": snapshot[name]}
    return str(line)


#: The texts the bar shows, translated; the static JS gets them as ``data-labels``.
LABELS: dict[str, Any] = {
    "pending": pgettext_lazy("job status", "pending"),
    "running": pgettext_lazy("job status", "running"),
    "completed": pgettext_lazy("job status", "completed"),
    "failed": pgettext_lazy("job status", "failed"),
    "cancelled": pgettext_lazy("job status", "cancelled"),
    "cancelling": pgettext_lazy("job status", "cancelling"),
    "eta_s": _("about %(n)s s left"),
    "eta_min": _("about %(n)s min left"),
    "eta_h": _("about %(n)s h left"),
    "done": _("%(done)s of %(total)s done"),
    "n_failed": _(", %(n)s failed"),
    "n_cancelled": _(", %(n)s cancelled"),
    "download": _("Download result"),
}


def _labels_json() -> str:
    return json.dumps({key: str(text) for key, text in LABELS.items()})


def _url(name: str, pk: Any) -> str:
    try:
        return reverse(name, args=[pk])
    except NoReverseMatch:  # the JSON views are not included: no polling, no cancel
        return ""


@register.inclusion_tag("django_jobprogress/progress_bar.html", takes_context=True)
def progress_bar(
    context: template.Context,
    job: Any,
    size: str = "md",
    label: str = "",
    token: str = "",
    counts: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Render ``job`` (a JobRecord, a Batch, or the id of either) as a bar that
    follows it live.

    ``size`` is sm, md or lg; ``label`` names the bar for screen readers and
    sighted users alike; ``token`` (from ``record.access_token()``) lets a
    viewer without a session follow the job. A viewer who may not see the job
    gets a placeholder that tells nothing about it, as the JSON view answers 404;
    so does every viewer when ``job`` names no job or batch (the same placeholder,
    so a page that renders ids from its URL cannot be used to probe them).

    ``counts``, for a batch, are its members' live figures as
    ``Batch.live_counts()`` returns them (``pending``, ``running``,
    ``running_progress``), when the page has read them already: a page of many
    batch bars then reads them in one query instead of one per bar.
    """
    if size not in SIZES:
        raise template.TemplateSyntaxError(
            f"progress_bar: size must be one of {', '.join(SIZES)}, got {size!r}"
        )
    token = str(token) if token else ""  # a template may hand over anything
    record = _tracked(job)
    request = context.get("request")
    user = getattr(request, "user", None)
    if record is None or not access.can_view(user, record, token or None):
        return {"unavailable": True, "size": size}
    kind = "batch" if isinstance(record, Batch) else "job"
    if isinstance(record, Batch) and counts is not None:
        snapshot = batch_snapshot(record, counts)
    else:
        snapshot = record.snapshot()
    if isinstance(record, Batch):
        default_label, summary = record.name, batch_summary(snapshot)
    else:
        default_label, summary = record.task_name.rsplit(".", 1)[-1], snapshot["message"]
    return {
        "snapshot": snapshot,
        "percent": int(snapshot["progress"] * 100),
        "finished": record.is_finished,
        "size": size,
        "label": label or default_label,
        "kind": kind,
        "summary": summary,
        "token": token,
        "can_cancel": access.can_cancel(user, record, token or None),
        # Under the site's script prefix, like the reversed JSON URLs beside it.
        "ws_path": f"{get_script_prefix()}ws/{PATHS[kind]}/{record.pk}/",
        "ws_watch_path": f"{get_script_prefix()}ws/watch/",
        "json_url": _url(f"django_jobprogress:{kind}-detail", record.pk),
        "cancel_url": _url(f"django_jobprogress:{kind}-cancel", record.pk),
        "csrf_token": context.get("csrf_token", ""),
        "status_label": LABELS.get(snapshot["status"], snapshot["status"]),
        "labels_json": _labels_json(),
    }
