"""Push doubles: one that records what would be sent, one that sends nothing."""

from __future__ import annotations

from typing import Any

from django_jobprogress.adapters.base import PushAdapter


class NullPush(PushAdapter):
    """Sends nothing; sockets watch the database."""

    def publish(self, group: str, snapshot: dict[str, Any], delay: float = 0.0) -> None:
        return None


class RecordingPush(PushAdapter):
    """Keeps every published ``(group, snapshot)`` in ``sent``, for tests."""

    sent: list[tuple[str, dict[str, Any]]] = []

    def publish(self, group: str, snapshot: dict[str, Any], delay: float = 0.0) -> None:
        self.sent.append((group, snapshot))

    @classmethod
    def clear(cls) -> None:
        cls.sent.clear()
