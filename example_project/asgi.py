"""ASGI entry point: HTTP through Django, ``ws/`` through django-jobprogress's routes.

Run it with ``python manage.py demo`` (daphne and a django-q2 cluster together),
or by hand: ``daphne example_project.asgi:application``.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
# Set Django up before anything imports models (the consumers do).
django_application = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from django_jobprogress.routing import websocket_urlpatterns  # noqa: E402

# daphne serves no static files itself; in DEBUG, Django's handler does.
http_application = (
    ASGIStaticFilesHandler(django_application) if settings.DEBUG else django_application
)

application = ProtocolTypeRouter(
    {
        "http": http_application,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
