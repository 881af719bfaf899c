"""Queue names. Each broker has its own queue so a slow or rate-limited broker never
starves the others; maintenance tasks (dispatch, reaping) run on `default`."""
from __future__ import annotations

from kombu import Queue

DEFAULT_QUEUE = "default"
BROKER_QUEUES = ("alpaca", "coinbase", "binance", "kraken", "ibkr")
# Work that is not a broker call, each on a queue of its own so a backlog of one never
# delays syncs: value history rebuilds, ledger recomputes, file imports.
WORK_QUEUES = ("portfolio", "ledger", "imports")


def queue_for(broker: str) -> str:
    return f"sync.{broker}"


def egress_queue(broker: str, source_ip: str) -> str:
    """The queue of the workers whose broker requests leave from `source_ip`: a step woken
    in a budget scope of that address (Binance's step slots) must run there, not on a worker
    of another address, whose budget and slots are not the ones that woke it."""
    return f"{queue_for(broker)}@{source_ip}"


def wake_queue(broker: str) -> str:
    """Where this process sends a step woken in its own budget scope."""
    from backend.brokers.egress import bound_ip

    ip = bound_ip()
    return egress_queue(broker, ip) if ip else queue_for(broker)


def task_queues() -> tuple[Queue, ...]:
    return ((Queue(DEFAULT_QUEUE),) + tuple(Queue(queue_for(b)) for b in BROKER_QUEUES)
            + tuple(Queue(name) for name in WORK_QUEUES))


def all_queue_names() -> list[str]:
    return [q.name for q in task_queues()]


def route_task(name, args, kwargs, options, task=None, **kw):
    """Sync steps are sent with an explicit queue (the connection's broker); anything
    sent without one goes to the default queue."""
    if options.get("queue"):
        return None
    return {"queue": DEFAULT_QUEUE}
