"""WebSocket routes: add ``websocket_urlpatterns`` to your ASGI router, or use
``application`` when the project has no ASGI routing of its own. Import this
module after Django is set up (it loads the consumers and models)::

    # asgi.py
    import os

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
    django.setup()

    from django_jobprogress.routing import application  # noqa: E402
"""

from typing import Any

from django.urls import path

from django_jobprogress.consumers import BatchProgressConsumer, JobProgressConsumer, WatchConsumer

websocket_urlpatterns = [
    path("ws/watch/", WatchConsumer.as_asgi()),
    path("ws/jobs/<str:job_id>/", JobProgressConsumer.as_asgi()),
    path("ws/batches/<str:batch_id>/", BatchProgressConsumer.as_asgi()),
]


def build_application() -> Any:
    """HTTP through Django, WebSockets (with sessions and auth) through our routes."""
    from channels.auth import AuthMiddlewareStack
    from channels.routing import ProtocolTypeRouter, URLRouter
    from channels.security.websocket import AllowedHostsOriginValidator
    from django.core.asgi import get_asgi_application

    django_app = get_asgi_application()
    return ProtocolTypeRouter(
        {
            "http": django_app,
            "websocket": AllowedHostsOriginValidator(
                AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
            ),
        }
    )


def __getattr__(name: str) -> Any:
    if name == "application":
        return build_application()
    raise AttributeError(name)
