from django.urls import path

from . import apis

urlpatterns = [
    path("portfolios/<int:portfolio_id>/imports/", apis.ImportCollectionApi.as_view(), name="portfolio-imports"),
    path("portfolios/<int:portfolio_id>/imports/<int:import_id>/", apis.ImportDetailApi.as_view(),
         name="portfolio-import-detail"),
    path("portfolios/<int:portfolio_id>/manual/transactions/", apis.ManualTransactionCollectionApi.as_view(),
         name="portfolio-manual-transactions"),
    path("portfolios/<int:portfolio_id>/manual/transactions/<int:transaction_id>/",
         apis.ManualTransactionItemApi.as_view(), name="portfolio-manual-transaction-detail"),
]
