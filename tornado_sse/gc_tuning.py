"""Garbage-collector settings for a process that holds thousands of streams.

CPython's cycle collector runs a *full* collection whenever the objects that
survived into the oldest generation have grown by a quarter since the last one.
Each stream keeps a few hundred tracked objects alive (handler, connection,
IOStream, curl bookkeeping, futures) for as long as it runs, so while streams
arrive and leave, full collections come every second or so and each walks every
live object: profiled at 1,000 streams, 18 full collections took 1.3 s of 5.4 s
of relay CPU, one pause of 70 ms each; at 9,000 streams a pause would be
several hundred milliseconds, on every stream at once.

Young collections stay as they are (they are cheap and free short-lived
cycles such as failed futures). Full collections are made rare, and the
objects that exist at start-up (modules, classes, the app) are frozen out of
them altogether. Cyclic garbage still gets collected, just in larger, rarer
batches.
"""

from __future__ import annotations

import gc

# Defaults are (700, 10, 10). The third number is how many second-generation
# collections pass before a full one is even considered.
YOUNG_THRESHOLD = 700
MIDDLE_THRESHOLD = 10
FULL_THRESHOLD = 1000


def tune_for_many_streams() -> None:
    """Call once, after start-up, before serving."""
    gc.collect()
    gc.freeze()  # start-up objects live for the whole process: never re-scan them
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, FULL_THRESHOLD)
