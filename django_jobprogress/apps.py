from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class JobProgressConfig(AppConfig):
    name = "django_jobprogress"
    verbose_name = _("Job progress")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from django_jobprogress import checks, receivers  # noqa: F401  (registration)
        from django_jobprogress.adapters import get_queue_adapter
        from django_jobprogress.exceptions import JobProgressConfigurationError
        from django_jobprogress.scheduler import sync_after_migrate

        post_migrate.connect(sync_after_migrate, sender=self)
        try:
            adapter = get_queue_adapter()
        except JobProgressConfigurationError:
            return  # reported by check jobprogress.E005
        adapter.ready()
