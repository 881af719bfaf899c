"""Request weight of every call the adapter makes, passed to the limiter as `cost`.

From rest-api.md (per endpoint) and the wallet connector's docstrings (binance-connector-
python clients/wallet ... capital_api.py, asset_api.py, account_api.py); see
docs/brokers.md §3.3. /api weights count against the egress IP's 6,000 a minute. The
IP-weighted /sapi endpoints are counted by Binance per endpoint (12,000 a minute each),
apart from /api, so they cost 0 in the /api budget; withdraw history is UID-weighted
and is charged to the account's own budget (the "binance-uid" rule).
"""
ACCOUNT = 20
EXCHANGE_INFO = 20
MY_TRADES = 20                 # 5 with orderId (not used: the adapter pages by fromId)
ALL_ORDERS = 20
ORDER = 4
OPEN_ORDERS_ONE = 6            # with a symbol
OPEN_ORDERS_ALL = 80           # without
SERVER_TIME = 1
TICKER_ALL = 4                 # /api/v3/ticker/price without a symbol
SAPI_IP = 0                    # apiRestrictions 1, deposit history 1, assetDividend 10: not /api weight
# Key checks spend the reserved "binance-verify" budget instead (settings.BROKER_RATE_LIMITS),
# at each call's own weight: apiRestrictions 1 (/sapi, IP; developers.binance.com wallet/account/
# api-key-permission), then account 20. The cheapest signed call that proves a key and tells its
# rights is apiRestrictions, so a bad key costs 1 there and no /api weight at all.
API_RESTRICTIONS = 1
WITHDRAW_HISTORY_UID = 18_000  # of 180,000 a minute per account: 10 calls a minute
