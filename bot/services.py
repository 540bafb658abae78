"""The clients a worker job uses, built once at start-up and passed in arq's `ctx`."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from arq.connections import ArqRedis

from bot.config import Config
from bot.hosts.base import GitHost
from bot.provision.base import Provisioner
from bot.pull_cache import PullCache
from bot.registry import Registry
from bot.store import Store


@dataclass
class Services:
    config: Config
    store: Store
    queue: ArqRedis
    hosts: Mapping[str, GitHost]
    provisioner: Provisioner
    clock: Callable[[], float] = field(default=time.time)
    # Asks registries whether an image exists (`staging.wait_for_image`); built on first use.
    registry: Registry | None = None
    # The request as last read, for rounds that only follow the cluster (bot.pull_cache).
    pulls: PullCache = field(default_factory=PullCache)
