"""Process-wide runtime policy for `outbound-pro serve`: how the cycle collector runs.

CPython's cycle collector walks every tracked container of a generation each time that
generation is collected.  After start-up the server holds a few hundred thousand long-lived
objects (modules, functions, the aiohttp app, configuration) that never become garbage, and
the default thresholds (700, 10, 10) collect the youngest generation after every 700 net
allocations.  On the SIP path each message allocates and frees a few dozen containers, so
with the defaults the collector ran thousands of times a second and every full collection
walked the whole start-up heap as well (benchmarks/README.md, "Registrar").

:func:`tune_gc` is called once, when the server has started: it collects what start-up left
behind, moves everything still alive into the permanent generation (``gc.freeze()``: never
walked again), and raises the thresholds so young collections are rarer and older ones rarer
still.  Cycles are still collected; the server's steady-state garbage is almost all freed by
reference counting, so the collector has little to find and need not look often.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000
"""Net container allocations between young collections (CPython's default: 700)."""
MIDDLE_THRESHOLD = 20
"""Young collections between middle ones (default 10)."""
OLD_THRESHOLD = 20
"""Middle collections between full ones (default 10); CPython also waits until the objects
that survived since the last full collection reach a quarter of the old generation."""


def tune_gc() -> None:
    """Freeze the start-up heap and raise the collection thresholds (see the module doc)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
