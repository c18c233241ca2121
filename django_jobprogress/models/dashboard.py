"""``JobDashboard``: the admin index's entry for the operations dashboard."""

from django.utils.translation import gettext_lazy as _

from django_jobprogress.models.jobs import JobRecord


class JobDashboard(JobRecord):
    """The admin index's "Dashboard" entry (a proxy: no table of its own); its admin
    sends staff to the dashboard page, ``admin:jobprogress_dashboard``."""

    class Meta:
        proxy = True
        verbose_name = _("dashboard")
        verbose_name_plural = _("dashboard")
        default_permissions = ()
