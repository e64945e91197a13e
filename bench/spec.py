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
    every: float = 1.0  # seconds between deltas; the first goes at once
    pad: int = 0  # extra characters per delta (bigger deltas)

    def question(self) -> str:
        return f"bench n={self.deltas} every={self.every} pad={self.pad}"

    @classmethod
    def parse(cls, text: str) -> StreamSpec:
        fields = dict(part.split("=", 1) for part in text.split() if "=" in part)
        return cls(int(fields.get("n", 10)), float(fields.get("every", 1.0)),
                   int(fields.get("pad", 0)))
