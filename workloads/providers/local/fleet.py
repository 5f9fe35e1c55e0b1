"""The local provider's Cloud Run: `manage.py runfleet` keeps, for every local worker pool, as many
worker processes alive as the pool's instance count says.

Each second or two it reads the pools and starts or stops children (`LOCAL_FLEET_WORKER_COMMAND`,
by default `manage.py runworker <slug>`). A worker is stopped with SIGTERM and given
`stop_timeout` seconds to finish its in-flight messages before SIGKILL, like Cloud Run does when it
removes an instance. A worker that exits on its own is restarted, after a delay that doubles with
each crash in a row (0.5 s up to 30 s), so a broken worker does not spin; each such exit is kept on
the pool's row (exits in a row, time, exit code) as the controller's evidence of a crash loop. Children get their own
session, so a Ctrl-C in the terminal reaches the supervisor only and it stops them in order.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connections
from django.utils import timezone

from workloads.providers.local.models import LocalWorkerPool
from workloads.providers.local.pools import local_pools_new_revision

logger = logging.getLogger(__name__)

RESTART_DELAY_MIN, RESTART_DELAY_MAX = 0.5, 30.0
HEALTHY_AFTER_SECONDS = 30.0  # a worker that ran this long before exiting starts a fresh crash count


@dataclass
class _Child:
    process: subprocess.Popen
    instance: str
    started_at: float
    stopping_since: float | None = None


@dataclass
class _Pool:
    slug: str
    children: list[_Child] = field(default_factory=list)
    crashes: int = 0  # exits in a row, for the restart delay
    next_start_at: float = 0.0


def restart_delay(crashes: int) -> float:
    return min(RESTART_DELAY_MAX, RESTART_DELAY_MIN * 2 ** max(0, crashes - 1))


class Fleet:
    def __init__(
        self,
        *,
        using: str = "default",
        command: list[str] | None = None,
        cwd: str | Path | None = None,
        stop_timeout: float = 30.0,
    ):
        self.using = using
        self.command = list(command or settings.LOCAL_FLEET_WORKER_COMMAND)
        self.cwd = str(cwd or settings.BASE_DIR)
        self.stop_timeout = stop_timeout
        self.pools: dict[str, _Pool] = {}
        self._serial = itertools.count(1)

    def tick(self) -> None:
        """Reap exited children, then start or stop children so each pool has its count."""
        now = time.monotonic()
        for name, pool in self.pools.items():
            self._reap(name, pool, now)
        try:
            wanted = {
                name: (slug, count)
                for name, slug, count in LocalWorkerPool.objects.using(self.using).values_list(
                    "name", "slug", "instance_count"
                )
            }
        except DatabaseError:
            # Keep what runs: a database hiccup must not take the whole fleet down.
            logger.exception("Reading the local worker pools failed; keeping the current workers")
            connections[self.using].close()
            return
        for name, pool in list(self.pools.items()):
            if name not in wanted:
                self._scale(name, pool, 0, now)
                if not pool.children:
                    del self.pools[name]
        for name, (slug, count) in wanted.items():
            pool = self.pools.setdefault(name, _Pool(slug=slug))
            pool.slug = slug
            self._scale(name, pool, count, now)

    def running(self) -> dict[str, list[int]]:
        """Pids of the children that are not being stopped, per pool."""
        return {
            name: [c.process.pid for c in pool.children if c.stopping_since is None and c.process.poll() is None]
            for name, pool in self.pools.items()
        }

    def _reap(self, name: str, pool: _Pool, now: float) -> None:
        for child in list(pool.children):
            code = child.process.poll()
            if code is None:
                if child.stopping_since is not None and now - child.stopping_since > self.stop_timeout:
                    logger.warning(
                        "Worker %s of %s did not stop within %.0f s; killing it",
                        child.instance,
                        name,
                        self.stop_timeout,
                    )
                    self._signal(child, signal.SIGKILL)
                continue
            pool.children.remove(child)
            if child.stopping_since is not None:
                logger.info("Worker %s of %s stopped (exit code %s)", child.instance, name, code)
                continue
            lived = now - child.started_at
            pool.crashes = 1 if lived >= HEALTHY_AFTER_SECONDS else pool.crashes + 1
            pool.next_start_at = now + restart_delay(pool.crashes)
            self._record_exit(name, pool.crashes, code)
            logger.warning(
                "Worker %s of %s exited with code %s after %.1f s; restarting in %.1f s",
                child.instance,
                name,
                code,
                lived,
                pool.next_start_at - now,
            )

    def _record_exit(self, name: str, exits_in_row: int, code: int) -> None:
        """Keep the exit on the pool's row: the scaling controller's evidence of a crash loop
        (workloads.domain.health), shown on the class page. A failed write loses only this evidence."""
        try:
            LocalWorkerPool.objects.using(self.using).filter(name=name).update(
                exits_in_row=exits_in_row, last_exit_at=timezone.now(), last_exit_code=code
            )
        except DatabaseError:
            logger.exception("Recording a worker exit of %s failed", name)
            connections[self.using].close()

    def _scale(self, name: str, pool: _Pool, count: int, now: float) -> None:
        live = [c for c in pool.children if c.stopping_since is None]
        if len(live) > count:
            # Stop the newest: the oldest have proven themselves healthy.
            for child in sorted(live, key=lambda c: c.started_at, reverse=True)[: len(live) - count]:
                logger.info("Stopping worker %s of %s (pid %s)", child.instance, name, child.process.pid)
                child.stopping_since = now
                self._signal(child, signal.SIGTERM)
        elif len(live) < count and now >= pool.next_start_at:
            for _ in range(count - len(live)):
                if not self._start(name, pool, now):
                    break

    def _start(self, name: str, pool: _Pool, now: float) -> bool:
        instance = f"{pool.slug}-{next(self._serial)}"
        args = [
            part.replace("{slug}", pool.slug).replace("{pool}", name).replace("{instance}", instance)
            for part in self.command
        ]
        env = {**os.environ, "CONTROLPLANE_WORKER_POOL": name, "CONTROLPLANE_WORKER_INSTANCE": instance}
        try:
            process = subprocess.Popen(args, cwd=self.cwd, env=env, start_new_session=True)
        except OSError:
            pool.crashes += 1
            pool.next_start_at = now + restart_delay(pool.crashes)
            logger.exception("Could not start a worker for %s with %s", name, args)
            return False
        pool.children.append(_Child(process=process, instance=instance, started_at=now))
        logger.info("Started worker %s of %s (pid %s)", instance, name, process.pid)
        return True

    @staticmethod
    def _signal(child: _Child, signum: int) -> None:
        try:
            os.killpg(child.process.pid, signum)  # the child's session: it and anything it started
        except ProcessLookupError:
            pass

    def shutdown(self) -> None:
        """SIGTERM every child, wait for them to finish their work, SIGKILL what is left."""
        now = time.monotonic()
        children = [child for pool in self.pools.values() for child in pool.children]
        for child in children:
            if child.stopping_since is None:
                child.stopping_since = now
                self._signal(child, signal.SIGTERM)
        deadline = now + self.stop_timeout
        while any(child.process.poll() is None for child in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        for child in children:
            if child.process.poll() is None:
                logger.warning("Worker %s did not stop within %.0f s; killing it", child.instance, self.stop_timeout)
                self._signal(child, signal.SIGKILL)
                child.process.wait()
        self.pools.clear()


def fleet_run(
    *,
    stop: threading.Event,
    using: str = "default",
    command: list[str] | None = None,
    cwd: str | Path | None = None,
    poll_seconds: float = 1.0,
    stop_timeout: float = 30.0,
) -> None:
    """Supervise until `stop` is set, then stop every worker cleanly."""
    fleet = Fleet(using=using, command=command, cwd=cwd, stop_timeout=stop_timeout)
    revision = local_pools_new_revision(using=using)
    logger.info("Fleet supervisor started: workers run %s (revision %s)", fleet.command, revision)
    try:
        while not stop.is_set():
            fleet.tick()
            stop.wait(poll_seconds)
    finally:
        fleet.shutdown()
        connections[using].close()  # this thread's connection; the supervisor is done with it
        logger.info("Fleet supervisor stopped")
