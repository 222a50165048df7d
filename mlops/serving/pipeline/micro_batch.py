"""Micro-batching: concurrent requests share one feature computation and one model call.

Requests queue up; a runner task takes the first, waits up to ``max_wait_s`` (counted
from that request's arrival) for more, up to ``max_batch`` records, and hands the batch
to ``process`` in a single worker thread (so the event loop keeps accepting and parsing
requests meanwhile, and the store connection is used by one thread). Requests that
arrive while a batch is being processed form the next batch; their wait is already
over, so under load there is no added latency. The runner waits only while another
request is on its way (announced with :meth:`MicroBatcher.arriving_request` while its
body is read and validated): a lone request is processed at once.

Pipelined commits: when the last batch's answers wait for a durable log commit (their
results carry a ``durable`` future), the runner does not wait for arriving requests
either. The next batch is whatever queued meanwhile and is computed while the log's
committer thread fsyncs the previous one (group commit: one fsync releases every batch
appended before it), so with closed-loop clients the worker is never idle during an
fsync, where holding everyone for one big batch would leave it idle for each one.

Example:
    >>> batcher = MicroBatcher(lambda items: [x * 2 for x in items])
    >>> asyncio.run(batcher.submit(21))
    42
"""
from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class _Item:
    payload: object
    size: int
    future: asyncio.Future
    arrived: float


class MicroBatcher:
    """Collect submissions for a few ms and process them as one batch.

    ``process(payloads) -> results`` runs in a worker thread; it returns one result per
    payload (an Exception instance is raised to that submitter only).
    """

    def __init__(self, process: Callable[[list], list], *, max_wait_s: float = 0.002,
                 max_batch: int = 64, executor: ThreadPoolExecutor | None = None):
        self.process = process
        self.max_wait_s = max_wait_s
        self.max_batch = max_batch
        self._own_executor = executor is None
        self.executor = executor or ThreadPoolExecutor(1, thread_name_prefix="mlops-predict")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._items: collections.deque[_Item] = collections.deque()
        self._event: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self.batches = 0          # how many batches ran (tests, metrics)
        self.last_batch_size = 0
        self.arriving = 0         # requests announced but not yet submitted
        self.pipelined = False    # the last batch's answers wait for a log commit

    @contextmanager
    def arriving_request(self) -> Iterator[Callable[[], None]]:
        """Announce a request being parsed; call the yielded function once it is submitted
        (or leave the block): while any is announced, the runner may wait for it."""
        state = {"open": True}

        def done() -> None:
            if state["open"]:
                state["open"] = False
                self.arriving -= 1
        self.arriving += 1
        try:
            yield done
        finally:
            done()

    def _ensure_started(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is loop and self._task is not None and not self._task.done():
            return
        # first use, or a new event loop (e.g. a fresh TestClient portal): rebind
        if self.executor is None:
            self.executor = ThreadPoolExecutor(1, thread_name_prefix="mlops-predict")
        self._loop = loop
        self._event = asyncio.Event()
        self._task = loop.create_task(self._run(), name="mlops-micro-batcher")

    async def submit(self, payload, size: int = 1):
        """Queue ``payload`` (worth ``size`` records) and await its result."""
        self._ensure_started()
        fut = self._loop.create_future()
        self._items.append(_Item(payload, max(int(size), 1), fut, self._loop.time()))
        self._event.set()
        return await fut

    def _take(self) -> list[_Item]:
        batch, n = [], 0
        while self._items:
            item = self._items[0]
            if batch and n + item.size > self.max_batch:
                break
            batch.append(self._items.popleft())
            n += item.size
        return batch

    def _queued_records(self) -> int:
        return sum(i.size for i in self._items)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._items:
                self._event.clear()
                await self._event.wait()
                continue
            deadline = self._items[0].arrived + self.max_wait_s
            # wait only while another request is being parsed: a lone one goes at once
            while self.arriving > 0 and not self.pipelined \
                    and self._queued_records() < self.max_batch:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                self._event.clear()
                try:
                    await asyncio.wait_for(self._event.wait(), timeout)
                except TimeoutError:
                    break
            batch = self._take()
            live = [i for i in batch if not i.future.done()]  # skip cancelled clients
            if not live:
                continue
            self.batches += 1
            self.last_batch_size = sum(i.size for i in live)
            try:
                results = await loop.run_in_executor(self.executor, self.process,
                                                     [i.payload for i in live])
            except Exception as exc:  # a bug in process: fail this batch, keep serving
                results = [exc] * len(live)
            self.pipelined = any(getattr(r, "durable", None) is not None for r in results)
            for item, res in zip(live, results):
                if item.future.done():
                    continue
                if isinstance(res, BaseException):
                    item.future.set_exception(res)
                else:
                    item.future.set_result(res)

    async def close(self) -> None:
        """Stop the runner (pending submitters get CancelledError)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        for item in self._items:
            if not item.future.done():
                item.future.cancel()
        self._items.clear()
        if self._own_executor:
            self.executor.shutdown(wait=True)
            self.executor = None  # recreated on next use
