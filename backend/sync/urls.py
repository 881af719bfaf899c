from django.urls import path

from . import apis

urlpatterns = [
    path("connections/<int:connection_id>/sync-runs/", apis.SyncRunListApi.as_view(), name="connection-sync-runs"),
    path("connections/<int:connection_id>/positions/", apis.PositionListApi.as_view(), name="connection-positions"),
    path("connections/<int:connection_id>/transactions/", apis.TransactionListApi.as_view(),
         name="connection-transactions"),
    path("connections/<int:connection_id>/orders/", apis.OrderListApi.as_view(), name="connection-orders"),
    path("sync-runs/<int:run_id>/", apis.SyncRunDetailApi.as_view(), name="sync-run-detail"),
]
