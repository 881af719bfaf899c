from django.apps import AppConfig


class PortfolioConfig(AppConfig):
    name = "backend.portfolio"
    label = "portfolio"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import receivers  # noqa: F401  - connects the value-history receivers
