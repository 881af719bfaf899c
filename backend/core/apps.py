from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "backend.core"
    label = "core"

    def ready(self):
        from . import schema  # noqa: F401  (registers the token scheme with drf-spectacular)
