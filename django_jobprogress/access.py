"""Who may see or cancel a job: its owner, staff with the permission, or a token holder."""

from __future__ import annotations

from typing import Any

from django_jobprogress.models import JobRecord


def _is_owner(user: Any, record: JobRecord) -> bool:
    return bool(
        user is not None
        and getattr(user, "is_authenticated", False)
        and record.owner_id is not None
        and record.owner_id == user.pk
    )


def _staff_with(user: Any, perm: str) -> bool:
    return bool(user is not None and user.is_active and user.is_staff and user.has_perm(perm))


def can_view(user: Any, record: JobRecord, token: str | None = None) -> bool:
    return (
        _is_owner(user, record)
        or _staff_with(user, "django_jobprogress.view_jobrecord")
        or record.check_access_token(token)
    )


def can_cancel(user: Any, record: JobRecord, token: str | None = None) -> bool:
    return (
        _is_owner(user, record)
        or _staff_with(user, "django_jobprogress.cancel_jobrecord")
        or record.check_access_token(token)
    )
