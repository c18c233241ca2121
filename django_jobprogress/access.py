"""Who may see or cancel a job or a batch: its owner, staff with the model
permission, or the bearer of its signed token.

The two rights are apart only for staff: ``view_<model>`` lets them see,
``cancel_<model>`` lets them cancel (and read the snapshot the cancel answers
with), and neither permission implies the other.
"""

from __future__ import annotations

from typing import Any


def _is_owner(user: Any, obj: Any) -> bool:
    return bool(
        user is not None
        and getattr(user, "is_authenticated", False)
        and obj.owner_id is not None
        and obj.owner_id == user.pk
    )


def _staff_with(user: Any, perm: str) -> bool:
    return bool(user is not None and user.is_active and user.is_staff and user.has_perm(perm))


def _perm(obj: Any, action: str) -> str:
    return f"django_jobprogress.{action}_{obj._meta.model_name}"


def can_view(user: Any, obj: Any, token: str | None = None) -> bool:
    """Whether ``user`` (or the bearer of ``token``) may see ``obj``, a JobRecord or
    a Batch: its snapshot over HTTP, its socket and its progress bar."""
    return (
        _is_owner(user, obj)
        or _staff_with(user, _perm(obj, "view"))
        or obj.check_access_token(token)
    )


def can_cancel(user: Any, obj: Any, token: str | None = None) -> bool:
    """Whether ``user`` (or the bearer of ``token``) may cancel ``obj``, a JobRecord
    or a Batch. Staff need ``cancel_<model>`` for this, not ``view_<model>``."""
    return (
        _is_owner(user, obj)
        or _staff_with(user, _perm(obj, "cancel"))
        or obj.check_access_token(token)
    )
