"""A worker bound to an egress address takes up the steps that address's step slots woke."""
from __future__ import annotations

from types import SimpleNamespace

from celery import Celery

from workers.egress_queues import _add_egress_queues
from workers.routing import egress_queue, queue_for, task_queues, wake_queue


def _app() -> Celery:
    app = Celery("egress-test", set_as_current=False)
    app.conf.task_queues = task_queues()
    return app


def test_a_step_woken_by_a_slot_goes_to_the_queue_of_this_workers_address(settings):
    settings.BROKER_EGRESS_IP = "127.0.0.2"
    assert wake_queue("binance") == "sync.binance@127.0.0.2" == egress_queue("binance", "127.0.0.2")
    settings.BROKER_EGRESS_IP = ""
    assert wake_queue("binance") == queue_for("binance") == "sync.binance"     # one address: the broker's queue


def test_a_bound_worker_also_reads_its_addresss_queue_of_each_broker_queue_it_reads(settings):
    settings.BROKER_EGRESS_IP = "127.0.0.2"
    app = _app()
    app.amqp.queues.select(["default", "sync.binance", "ledger"])          # celery worker -Q default,sync.binance,ledger
    _add_egress_queues(instance=SimpleNamespace(app=app))
    assert set(app.amqp.queues.consume_from) == {"default", "sync.binance", "ledger", "sync.binance@127.0.0.2"}


def test_an_unbound_worker_reads_no_address_queue(settings):
    settings.BROKER_EGRESS_IP = ""
    app = _app()
    app.amqp.queues.select(["default", "sync.binance"])
    _add_egress_queues(instance=SimpleNamespace(app=app))
    assert set(app.amqp.queues.consume_from) == {"default", "sync.binance"}
