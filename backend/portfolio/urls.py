from django.urls import path

from . import apis

urlpatterns = [
    path("portfolios/", apis.PortfolioCollectionApi.as_view(), name="portfolio-list"),
    path("portfolios/<int:portfolio_id>/", apis.PortfolioItemApi.as_view(), name="portfolio-detail"),
    path("portfolios/<int:portfolio_id>/value/", apis.PortfolioValueApi.as_view(), name="portfolio-value"),
    path("portfolios/<int:portfolio_id>/history/", apis.PortfolioHistoryApi.as_view(), name="portfolio-history"),
    path("portfolios/<int:portfolio_id>/returns/", apis.PortfolioReturnsApi.as_view(), name="portfolio-returns"),
]
