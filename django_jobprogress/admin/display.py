"""How the admin shows jobs and batches: short task names, status badges,
preformatted text and timelines. Every user text goes through ``format_html``."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from django_jobprogress.models import Batch, JobRecord

#: Characters of JSON or traceback a page shows before cutting.
SHOWN_TEXT = 100_000


def short_name(task_name: str) -> str:
    """``app.tasks.ZipExport`` -> ``ZipExport``."""
    return task_name.rsplit(".", 1)[-1]


def job_label(record: JobRecord) -> str:
    """A job as messages name it: its short task name and the start of its id."""
    return f"{short_name(record.task_name)} {str(record.pk)[:8]}"


def task_html(task_name: str) -> SafeString:
    """The short name, with the full dotted path on hover."""
    return format_html('<span title="{}">{}</span>', task_name, short_name(task_name))


def status_label(obj: JobRecord | Batch) -> str:
    """The status's human label ("Running"), and whether a cancel is on its way."""
    try:
        label = str(type(obj).Status(obj.status).label)
    except ValueError:
        label = str(obj.status)
    if obj.cancel_requested_at is not None and not obj.is_finished:
        return _("%(status)s, cancel requested") % {"status": label}
    return label


def badge(obj: JobRecord | Batch) -> SafeString:
    """The status as a coloured badge; the job list's script rewrites it live."""
    return format_html(
        '<span class="jp-badge jp-badge--{}" data-jp-badge>{}</span>', obj.status, status_label(obj)
    )


def pretty_json(value: Any) -> SafeString:
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)
    return preformatted(text)


def preformatted(text: str, css: str = "") -> SafeString:
    """``text`` in an escaped ``<pre>``, cut after ``SHOWN_TEXT`` characters."""
    cut = ""
    if len(text) > SHOWN_TEXT:
        cut = _("(%(shown)s of %(total)s characters shown)") % {
            "shown": formats.number_format(SHOWN_TEXT, force_grouping=True),
            "total": formats.number_format(len(text), force_grouping=True),
        }
        text = text[:SHOWN_TEXT]
    return format_html(
        '<pre class="{}">{}</pre>{}',
        f"jp-pre {css}".strip(),
        text,
        format_html('<p class="help">{}</p>', cut) if cut else "",
    )


def duration(seconds: float) -> str:
    if seconds < 60:
        return _("%(seconds).1f s") % {"seconds": seconds}
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return _("%(minutes)d min %(seconds)d s") % {"minutes": minutes, "seconds": secs}
    hours, minutes = divmod(minutes, 60)
    return _("%(hours)d h %(minutes)d min") % {"hours": hours, "minutes": minutes}


def timeline_html(events: Iterable[tuple[str, datetime | None, str]]) -> SafeString | None:
    """An ordered list of (what, when, note) moments; those that never came are left out."""
    rows = [
        (what, when.isoformat(), formats.localize(timezone.localtime(when)), note)
        for what, when, note in events
        if when is not None
    ]
    if not rows:
        return None
    items = format_html_join(
        "",
        '<li><span class="jp-timeline__what">{}</span> <time datetime="{}">{}</time> '
        '<span class="jp-timeline__note">{}</span></li>',
        rows,
    )
    return format_html('<ol class="jp-timeline">{}</ol>', items)


def or_empty(method: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """For a read-only field's method that may have nothing to show (None): the
    admin's empty value ("-") is shown then, as for an empty model field."""

    @functools.wraps(method)
    def shown(model_admin: Any, obj: Any) -> Any:
        value = method(model_admin, obj)
        return model_admin.get_empty_value_display() if value is None else value

    return shown
