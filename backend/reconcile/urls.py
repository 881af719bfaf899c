from django.urls import path

from . import apis

urlpatterns = [
    path("portfolios/<int:portfolio_id>/breaks/", apis.BreakListApi.as_view(), name="portfolio-breaks"),
]
