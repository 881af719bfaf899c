import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

import workers.market  # noqa: F401  (registers the market tasks, as the worker's imports do)
from workers.celery_app import app
from workers.routing import all_queue_names, queue_for
from workers.tasks import sync_chain

pytestmark = pytest.mark.django_db


def test_installs_the_dispatcher_the_reaper_the_price_refreshes_and_the_portfolio_schedules_idempotently():
    call_command("setup_periodic_tasks")
    call_command("setup_periodic_tasks")
    tasks = {t.task: t for t in PeriodicTask.objects.all()}
    assert len(PeriodicTask.objects.all()) == 7 and all(t.enabled for t in tasks.values())
    assert {task: (t.interval.every, t.queue) for task, t in tasks.items()} == {
        "sync.dispatch_due": (60, "default"), "sync.reap_stale_runs": (60, "default"),
        "market.dispatch_latest": (60, "default"), "market.dispatch_closes": (86_400, "default"),
        "market.prune_latest": (86_400, "default"),
        "portfolio.extend_histories": (3600, "portfolio"), "portfolio.refresh_values": (60, "portfolio")}
    app.loader.import_default_modules()               # what a worker imports (app.conf.imports)
    assert set(tasks) <= set(app.tasks)


def test_a_sync_chain_runs_its_five_steps_on_the_brokers_queue():
    chain = sync_chain(42, "kraken")
    assert [t.task for t in chain.tasks] == ["sync.fetch_positions", "sync.fetch_transactions", "sync.fetch_orders",
                                            "sync.reconcile", "sync.write_log"]
    assert all(t.options["queue"] == queue_for("kraken") and t.args == (42,) for t in chain.tasks)
    assert [t.task for t in sync_chain(42, "alpaca", first_step="orders").tasks][0] == "sync.fetch_orders"
    assert set(all_queue_names()) == {"default", "sync.alpaca", "sync.coinbase", "sync.binance", "sync.kraken",
                                      "sync.ibkr", "portfolio", "ledger", "imports"}


def test_tasks_are_acknowledged_late_and_requeued_when_a_worker_dies():
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost
    assert app.conf.broker_transport_options["visibility_timeout"] > app.conf.task_time_limit
