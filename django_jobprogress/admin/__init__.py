"""Admin for jobs and batches, an operations console that stays fast at a million
rows, and for schedules (read-only: settings are their source).

The job list never counts the whole table (``paginators``), sorts along an index,
finds a job by its id through the primary key, and takes its filter choices from a
loose index scan (``filters``); its unfinished rows follow their jobs over the
page's one shared socket (``static/django_jobprogress/admin.js``). Cancel and retry,
from the actions and from a job's buttons, are permission-checked and written to
the admin history (``actions``).

Modules: ``jobs`` (the job list and URLs), ``job_page`` (a job's page),
``actions`` (cancel and retry), ``batches``, ``schedules``, ``index`` (the
dashboard's entry in the admin index), ``filters``, ``paginators``, ``display``
(badges, task names, preformatted text) and ``base`` (what jobs and batches share).
"""

from django.contrib import admin

from django_jobprogress.admin.actions import JobActions
from django_jobprogress.admin.base import ConsoleAdmin
from django_jobprogress.admin.batches import BatchAdmin, callback_job
from django_jobprogress.admin.filters import (
    BatchFilter,
    IndexedValueFilter,
    QueueFilter,
    TaskFilter,
    distinct_values,
)
from django_jobprogress.admin.index import DashboardAdmin
from django_jobprogress.admin.job_page import JobPage
from django_jobprogress.admin.jobs import JobChangeList, JobRecordAdmin
from django_jobprogress.admin.paginators import CappedCountPaginator, planned_rows
from django_jobprogress.admin.schedules import ScheduleAdmin
from django_jobprogress.models import Batch, JobDashboard, JobRecord, Schedule

__all__ = [
    "BatchAdmin",
    "BatchFilter",
    "CappedCountPaginator",
    "ConsoleAdmin",
    "DashboardAdmin",
    "IndexedValueFilter",
    "JobActions",
    "JobChangeList",
    "JobPage",
    "JobRecordAdmin",
    "QueueFilter",
    "ScheduleAdmin",
    "TaskFilter",
    "callback_job",
    "distinct_values",
    "planned_rows",
]

admin.site.register(JobRecord, JobRecordAdmin)
admin.site.register(Batch, BatchAdmin)
admin.site.register(Schedule, ScheduleAdmin)
admin.site.register(JobDashboard, DashboardAdmin)
