"""The ASGI application that ``bench/push_latency.py`` serves with daphne or uvicorn.

``BENCH_PUSH_DESIGN`` picks the WebSocket side:

- ``hub``: ``django_jobprogress.routing.websocket_urlpatterns`` (one layer
  subscription per job per server process, fanned out locally);
- ``plain``: ``PlainJobConsumer`` below, the textbook Channels design: every socket
  joins the job's group itself and the layer delivers each update to each socket.

Both are wrapped in ``AuthMiddlewareStack`` and authorised by ``?token=``. HTTP
goes to Django, which serves the JSON view at ``/jp/jobs/<uuid>/`` (this module
is also the ``ROOT_URLCONF``).
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.push_settings")

from django.core.asgi import get_asgi_application

django_application = get_asgi_application()  # sets Django up before the imports below

from typing import Any  # noqa: E402
from urllib.parse import parse_qs  # noqa: E402
from uuid import UUID  # noqa: E402

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.db import database_sync_to_async  # noqa: E402
from channels.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import include, path  # noqa: E402

from django_jobprogress import access  # noqa: E402
from django_jobprogress.groups import job_group  # noqa: E402
from django_jobprogress.models import JobRecord  # noqa: E402
from django_jobprogress.routing import websocket_urlpatterns as hub_urlpatterns  # noqa: E402

FINISHED = {"completed", "failed", "cancelled"}

urlpatterns = [path("jp/", include("django_jobprogress.urls"))]


class PlainJobConsumer(AsyncJsonWebsocketConsumer):
    """One group member per socket: ``group_add`` on connect, ``send_json`` per update."""

    group: str | None = None

    async def connect(self) -> None:
        await self.accept()
        record = await self._authorised_record(self.scope["url_route"]["kwargs"]["job_id"])
        if record is None:
            await self.close(code=4403)
            return
        self.group = job_group(record.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        snapshot = await database_sync_to_async(record.snapshot)()
        await self.send_json(snapshot)

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def jobprogress_update(self, event: dict[str, Any]) -> None:
        """The handler of the transport's ``jobprogress.update`` messages."""
        snapshot = event["snapshot"]
        await self.send_json(snapshot)
        if snapshot["status"] in FINISHED:
            await self.close(code=1000)

    @database_sync_to_async
    def _authorised_record(self, job_id: Any) -> JobRecord | None:
        try:
            pk = UUID(str(job_id))
        except ValueError:
            return None
        record = JobRecord.objects.filter(pk=pk).first()
        token = parse_qs(self.scope.get("query_string", b"").decode()).get("token", [None])[0]
        if record is None or not access.can_view(self.scope.get("user"), record, token):
            return None
        return record


plain_urlpatterns = [path("ws/jobs/<str:job_id>/", PlainJobConsumer.as_asgi())]

DESIGN = os.environ.get("BENCH_PUSH_DESIGN", "hub")
websocket_urlpatterns = plain_urlpatterns if DESIGN == "plain" else hub_urlpatterns

application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)
