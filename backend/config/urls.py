from django.contrib import admin
from django.urls import include, path
from rest_framework.authtoken.views import obtain_auth_token

api_v1 = [
    path("auth/token/", obtain_auth_token, name="auth-token"),
    path("", include("backend.connections.urls")),
    path("", include("backend.sync.urls")),
    path("", include("backend.portfolio.urls")),
    path("", include("backend.ledger.urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("", include("backend.core.urls")),
]
