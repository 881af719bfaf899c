from django.urls import path

from . import apis

P = "portfolios/<int:portfolio_id>/"
urlpatterns = [
    path(P + "holdings/", apis.HoldingListApi.as_view(), name="portfolio-holdings"),
    path(P + "lots/", apis.LotListApi.as_view(), name="portfolio-lots"),
    path(P + "disposals/", apis.DisposalListApi.as_view(), name="portfolio-disposals"),
    path(P + "disposals/<int:disposal_id>/lot-selection/", apis.LotSelectionApi.as_view(),
         name="portfolio-disposal-lot-selection"),
    path(P + "income/", apis.IncomeApi.as_view(), name="portfolio-income"),
    path(P + "needs-basis/", apis.NeedsBasisListApi.as_view(), name="portfolio-needs-basis"),
    path(P + "needs-basis/<int:lot_id>/", apis.NeedsBasisDetailApi.as_view(), name="portfolio-needs-basis-detail"),
    path(P + "form-8949/", apis.Form8949Api.as_view(), name="portfolio-form-8949"),
]
