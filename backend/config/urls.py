from django.contrib import admin
from django.urls import include, path

from backend.core import auth_apis

api_v1 = [
    path("auth/token/", auth_apis.LoginApi.as_view(), name="auth-token"),
    path("auth/logout/", auth_apis.LogoutApi.as_view(), name="auth-logout"),
    path("auth/logout-all/", auth_apis.LogoutAllApi.as_view(), name="auth-logout-all"),
    path("", include("backend.connections.urls")),
    path("", include("backend.sync.urls")),
    path("", include("backend.portfolio.urls")),
    path("", include("backend.imports.urls")),
    path("", include("backend.reconcile.urls")),
    path("", include("backend.ledger.urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("", include("backend.core.urls")),
]

# JSON under /api/ for paths no view answers and errors no view caught (backend/core/api.py).
handler400 = "backend.core.api.bad_request"
handler404 = "backend.core.api.not_found"
handler500 = "backend.core.api.server_error"
