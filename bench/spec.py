"""The load one stream asks for, carried in the question so that the same
request shape works straight against the upstream and through the relay."""

from __future__ import annotations

import re
from dataclasses import dataclass

# A delta's marker: its sequence number and the upstream's send time
# (CLOCK_MONOTONIC, microseconds, which is system-wide on Linux).
MARKER = re.compile(rb"d(\d+)@(\d+)")


@dataclass(frozen=True)
class StreamSpec:
    deltas: int = 10
    every: float = 1.0  # seconds between deltas
    pad: int = 0  # extra characters per delta (bigger deltas)
    # CLOCK_MONOTONIC time of the first delta; 0: at once. Lets a phase open
    # all its streams first and then run them all at once, like answers whose
    # first token takes a while.
    at: float = 0.0

    def question(self) -> str:
        return f"bench n={self.deltas} every={self.every} pad={self.pad} at={self.at:.6f}"

    @classmethod
    def parse(cls, text: str) -> StreamSpec:
        fields = dict(part.split("=", 1) for part in text.split() if "=" in part)
        return cls(int(fields.get("n", 10)), float(fields.get("every", 1.0)),
                   int(fields.get("pad", 0)), float(fields.get("at", 0.0)))
