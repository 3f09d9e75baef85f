"""A module whose import alone has an effect, as many modules' do: if RQ ever imports it
(to resolve a callback name), :data:`rq_gadgets.CALLED` says so."""

from __future__ import annotations

from typing import Any

from tests.integration.workers import rq_gadgets

rq_gadgets.CALLED.append(("imported", __name__))


def record(job: Any, connection: Any, *args: Any) -> None:
    rq_gadgets.record(job, connection, *args)
