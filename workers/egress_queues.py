"""A worker whose broker requests leave from BROKER_EGRESS_IP also consumes, for every broker
queue it reads, that address's own queue (workers.routing.egress_queue): steps woken by a
freed step slot of this address's budget, and the retries of steps that wait in its line,
are sent there, so a worker of the same address takes them up. On the shared broker queue
a worker of another address could take them, find its own slots full and wait again, while
the slot reserved for them here went unused until its reservation ended."""
from __future__ import annotations

from celery.signals import celeryd_after_setup

from .routing import BROKER_QUEUES, egress_queue, queue_for


@celeryd_after_setup.connect
def _add_egress_queues(sender=None, instance=None, **_):
    from backend.brokers.egress import bound_ip

    ip = bound_ip()
    if not ip or instance is None:
        return
    consumed = set(instance.app.amqp.queues.consume_from or {})
    for broker in BROKER_QUEUES:
        if not consumed or queue_for(broker) in consumed:
            instance.app.amqp.queues.select_add(egress_queue(broker, ip))
