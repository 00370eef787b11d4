"""A bounded queue in front of the model: the pictures of concurrent requests classified in one batch.

    request ─ submit(images, explain) ─ Job with a Future ─ bounded queue (QueueFull when full)
    worker thread ─ takes waiting jobs up to ``max_batch`` pictures ─ groups them by ``explain``
                  ─ one ``predict_many`` call per ``max_batch`` pictures ─ resolves every job's Future

The model runs in the worker thread only (one model call at a time); callers wait on the Future
(``asyncio.wrap_future`` in the server), so an event loop never blocks on the model. A job whose
Future was cancelled while it waited (its request timed out) is dropped without running.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from PIL import Image

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """The queue holds ``max_queue`` jobs already; ``retry_after``: seconds until it has likely drained."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the queue is full, retry in {retry_after} s")
        self.retry_after = retry_after


class BatcherClosed(RuntimeError):
    """The batcher was closed (server shutting down) before the job ran."""


@dataclass
class Job:
    """The pictures of one request; ``future`` gets one list of faces per picture."""

    images: list[Image.Image]
    explain: bool
    future: Future = field(default_factory=Future)


class Batcher:
    """``submit`` pictures from any thread; one worker thread classifies them in batches.

    ``predict_many(images, explain=...) -> [[Face, ...] per image]`` (``Recognizer.predict_many``);
    ``max_queue``: jobs that may wait (more get ``QueueFull``); ``max_batch``: pictures per model call.
    """

    def __init__(self, predict_many: Callable, max_queue: int = 16, max_batch: int = 8) -> None:
        self.predict_many = predict_many
        self.max_queue, self.max_batch = max(1, int(max_queue)), max(1, int(max_batch))
        self._jobs: deque[Job] = deque()
        self._cond = threading.Condition()
        self._worker: threading.Thread | None = None
        self._closed = False
        self.running = 0            # pictures in the model right now
        self.batches = 0            # predict_many calls made
        self.images = 0             # pictures classified
        self._seconds_per_image = 0.2  # running estimate, for Retry-After

    @property
    def pending(self) -> int:
        """Jobs waiting for the worker."""
        with self._cond:
            return len(self._jobs)

    def start(self) -> None:
        """Start the worker thread (again after ``close``); a no-op while it runs."""
        with self._cond:
            self._closed = False
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="orsanet-batcher", daemon=True)
                self._worker.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the worker after its current batch; jobs still waiting fail with ``BatcherClosed``."""
        with self._cond:
            self._closed = True
            waiting = list(self._jobs)
            self._jobs.clear()
            self._cond.notify_all()
            worker = self._worker
        for job in waiting:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(BatcherClosed("the server is shutting down"))
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout)

    def submit(self, images: list[Image.Image], explain: bool = False) -> Future:
        """Queue one request's pictures; raises ``QueueFull`` when ``max_queue`` jobs wait already."""
        job = Job(list(images), bool(explain))
        with self._cond:
            if self._closed:
                raise BatcherClosed("the server is shutting down")
            if len(self._jobs) >= self.max_queue:
                raise QueueFull(self._retry_after())
            self._jobs.append(job)
            self._cond.notify()
        if self._worker is None or not self._worker.is_alive():
            self.start()
        return job.future

    def _retry_after(self) -> int:
        """Seconds the waiting pictures likely need (called holding the lock)."""
        waiting = sum(len(job.images) for job in self._jobs) + self.running
        return max(1, math.ceil(waiting * self._seconds_per_image))

    def _take(self) -> list[Job] | None:
        """The next jobs to run together: the oldest, then more while they fit in ``max_batch``
        pictures. Blocks while the queue is empty; None once closed."""
        with self._cond:
            while True:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return None
                jobs, count = [], 0
                while self._jobs and (not jobs or count + len(self._jobs[0].images) <= self.max_batch):
                    job = self._jobs.popleft()
                    if job.future.set_running_or_notify_cancel():  # False: cancelled while it waited
                        jobs.append(job)
                        count += len(job.images)
                if jobs:
                    self.running = count
                    return jobs

    def _work(self) -> None:
        while (jobs := self._take()) is not None:
            for explain in (False, True):
                group = [job for job in jobs if job.explain == explain]
                if group:
                    self._run(group, explain)
            with self._cond:
                self.running = 0

    def _run(self, jobs: list[Job], explain: bool) -> None:
        """Classify the pictures of ``jobs`` (``max_batch`` per call) and hand each job its share."""
        images = [image for job in jobs for image in job.images]
        started = time.perf_counter()
        try:
            faces: list = []
            for start in range(0, len(images), self.max_batch):
                faces += self.predict_many(images[start:start + self.max_batch], explain=explain)
                self.batches += 1
        except Exception as error:  # the model failed: every request of the batch gets the error
            log.exception("model call failed on %d pictures", len(images))
            for job in jobs:
                job.future.set_exception(error)
            return
        seconds = time.perf_counter() - started
        self.images += len(images)
        self._seconds_per_image = 0.8 * self._seconds_per_image + 0.2 * seconds / max(1, len(images))
        log.debug("classified %d pictures of %d requests in %.3f s", len(images), len(jobs), seconds)
        offset = 0
        for job in jobs:
            job.future.set_result(faces[offset:offset + len(job.images)])
            offset += len(job.images)
