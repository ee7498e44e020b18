"""Entry point for ASGI servers: ``uvicorn --factory genesis.api.asgi:create_default_app``."""

from __future__ import annotations

import gc
import sys

from fastapi import FastAPI

from genesis.api.app import create_app
from genesis.config import get_settings

# CPython's default (700 allocations) runs a young collection every few requests and an old one
# every ~70,000 allocations; each old collection walks every object the imports left behind. A
# 10,000-point price body allocates ~100,000 objects, so the collector took ~40% of ingestion time.
GC_YOUNG_THRESHOLD = 10_000
# The event loop shares the GIL with worker threads (SQLite writes, audit writer, hashing glue). Each time the loop
# wakes up it must take the GIL back, waiting up to the switch interval while a busy thread holds it: at CPython's
# 5 ms a request that wakes the loop 5 times could wait 25 ms (the convoy effect). 1 ms bounds that wait.
SWITCH_INTERVAL_SECONDS = 0.001


def tune_gc() -> None:
    """Move what start-up built out of the collector's sight and collect young objects less often.

    ``gc.freeze()`` puts every object alive now (modules, the app, settings) in a permanent
    generation that collections skip; reference counting still frees almost everything a
    request allocates at once, so the higher threshold only delays reclaiming reference
    cycles. Measured in docs/PERFORMANCE.md.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def create_default_app() -> FastAPI:
    """The app for the process settings; migrations were applied by ``genesis serve``."""
    app = create_app(get_settings())
    tune_gc()
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    return app
