from django.urls import path

from . import apis

urlpatterns = [
    path("brokers/", apis.BrokerListApi.as_view(), name="broker-list"),
    path("connections/", apis.ConnectionCollectionApi.as_view(), name="connection-list"),
    path("connections/<int:connection_id>/", apis.ConnectionItemApi.as_view(), name="connection-detail"),
    path("connections/<int:connection_id>/sync/", apis.ConnectionSyncApi.as_view(), name="connection-sync"),
    path("connections/<int:connection_id>/disconnect/", apis.ConnectionDisconnectApi.as_view(),
         name="connection-disconnect"),
]
