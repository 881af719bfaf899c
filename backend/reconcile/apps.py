from django.apps import AppConfig


class ReconcileConfig(AppConfig):
    name = "backend.reconcile"
    label = "reconcile"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Reconcile"
