"""What the job and batch models share."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models


def user_field(verbose_name: Any, related_name: str) -> models.ForeignKey[Any, Any]:
    """An optional link to a user that outlives the user (SET_NULL on delete)."""
    return models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=verbose_name,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name=related_name,
    )
