"""Reconstructions of sessions that decide at the same moment, run as one batched ROP call.

A decision that needs its session's reconstruction first takes a ``Ticket`` (it will ask
soon), then hands its session's warm state to ``Batcher.reconstruct`` and waits. One thread
runs the reconstructions: it takes the first request, then waits for the other ticket
holders to ask, at most ``window_s`` (a lone session never waits: no other ticket is out),
groups the requests by grid shape and detector geometry and steps each group with
``physics.incremental.advance`` (data sets do not interact, so a session's result is the one
it gets alone). The same thread runs every reconstruction, so concurrent sessions never
compete for the CPU's cores inside torch.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from ..device import configure_threads
from ..physics.incremental import IncrementalReconstruction, advance


@dataclass
class Ticket:
    """A decision's promise to ask for a reconstruction (or to cancel)."""

    batcher: Batcher
    open: bool = True

    def cancel(self) -> None:
        self.batcher._settle(self)


@dataclass
class _Request:
    state: IncrementalReconstruction
    result: Future = field(default_factory=Future)


class Batcher:
    """The reconstruction thread and its queue. ``window_s``: the longest a request waits for
    the others that hold tickets; ``threads``: torch's CPU threads in that thread (0: the
    default, ``device.configure_threads``); ``on_batch``: told how many sessions each call stepped."""

    def __init__(self, window_s: float, threads: int = 0, on_batch: Callable[[int], None] | None = None) -> None:
        self.window_s = window_s
        self.threads = threads
        self.on_batch = on_batch
        self._condition = threading.Condition()
        self._requests: list[_Request] = []
        self._tickets = 0
        self._closed = False
        self.batch_sizes: list[int] = []     # how many sessions each call stepped (the latest 1000)
        self._thread = threading.Thread(target=self._loop, name="reconstruct", daemon=True)
        self._thread.start()

    def ticket(self) -> Ticket:
        with self._condition:
            self._tickets += 1
            return Ticket(self)

    def reconstruct(self, ticket: Ticket, state: IncrementalReconstruction) -> np.ndarray:
        """The session's estimate (H, W) complex64 brought up to date, as a CPU array."""
        request = _Request(state)
        with self._condition:
            if self._closed:
                raise RuntimeError("the server is shutting down")
            self._settle_locked(ticket)
            self._requests.append(request)
            self._condition.notify_all()
        return request.result.result()

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        self._thread.join(timeout=30)

    # ---- the reconstruction thread --------------------------------------------------------
    def _settle(self, ticket: Ticket) -> None:
        with self._condition:
            self._settle_locked(ticket)
            self._condition.notify_all()

    def _settle_locked(self, ticket: Ticket) -> None:
        if ticket.open:
            ticket.open = False
            self._tickets -= 1

    def _loop(self) -> None:
        configure_threads(self.threads)
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._requests or self._closed)
                if not self._requests:
                    return
                deadline = time.monotonic() + self.window_s
                while self._tickets > 0 and (left := deadline - time.monotonic()) > 0:
                    self._condition.wait(left)
                batch, self._requests = self._requests, []
            self._run(batch)

    def _run(self, requests: list[_Request]) -> None:
        groups: dict[tuple, list[_Request]] = defaultdict(list)
        for request in requests:
            groups[(request.state.grid.shape_px, request.state.geometry, request.state.device)].append(request)
        for group in groups.values():
            try:
                self._step(group)
            except Exception:  # one session's bad data must not fail the others: each alone
                for request in group:
                    try:
                        self._step([request])
                    except Exception as exc:
                        request.result.set_exception(exc)
        self.batch_sizes = [*self.batch_sizes[-999:], len(requests)]
        if self.on_batch is not None:
            self.on_batch(len(requests))

    @staticmethod
    def _step(group: list[_Request]) -> None:
        estimates = advance([r.state for r in group])
        for request, estimate in zip(group, estimates):
            request.result.set_result(estimate.cpu().numpy())
