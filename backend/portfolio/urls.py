from django.urls import path

from . import apis

urlpatterns = [
    path("portfolios/", apis.PortfolioListApi.as_view(), name="portfolio-list"),
]
