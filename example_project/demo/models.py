"""The example site's one model: the admin notification a batch callback writes."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class Notice(models.Model):
    """A line for a user (and the admin), like the notification the callback of
    Oban's weekly email blast sends once every email of the batch is done."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="demo_notices",
    )
    batch_id = models.UUIDField("batch", db_index=True)
    text = models.CharField(max_length=255)
    created_at = models.DateTimeField("created", default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.text
