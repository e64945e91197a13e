"""The benchmark driver: one command, every phase, direct and relayed side by side.

    python -m bench                 # the full benchmark (about two minutes)
    python -m bench --smoke         # a few hundred streams, correctness only (CI)

Each phase starts a fresh fake upstream, runs the load straight against it
("direct"), then starts a fresh relay (``run.py``) in front of it and runs the
same load through it ("relay"). CPU time and resident memory of the server
process (the upstream in the direct run, the relay in the relayed run) are read
from ``/proc`` around the load; the clients report their own numbers. The exit
status is non-zero if any stream failed, lost a delta or saw one out of order;
the speed targets are reported, never enforced, because this machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .client import LoadClient
from .spec import StreamSpec

ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


@dataclass
class Phase:
    name: str
    streams: int
    deltas: int
    every: float
    ramp: float
    clients: int = 2
    pad: int = 0
    # Seconds after the ramp before the first deltas (then staggered over one
    # interval); None: each stream's first delta goes as soon as it opens.
    hold: float | None = None
    timeout: float = 60.0
    relay_flags: list[str] = field(default_factory=list)

    def describe(self) -> str:
        first = ("first delta at once" if self.hold is None else
                 f"first deltas from {self.hold:g}s after the last arrival, staggered over "
                 f"{self.deltas * self.every:g}s")
        return (f"{self.streams} streams x {self.deltas} deltas every {self.every:g}s, "
                f"arrivals over {self.ramp:g}s, {first}, {self.clients} client process(es)")


# "latency": 9,000 streams open over 15 s (600 a second); 3 s after the last
# arrival the first deltas start, staggered over 10 s (one stream's length),
# like answers whose first token takes a while: all 9,000 streams are open at
# once, deltas peak at 9,000 a second and streams end at 900 a second. "arrivals": the same
# streams with no wait, arriving over 9 s (1,000 a second, the least that keeps
# all 9,000 ten-second streams open at once): the cost of accepting streams,
# measured, not a target. The relay runs with its defaults (heartbeat after
# 15 s of silence, default timeouts and caps); the throughput phase, whose
# streams last 2 s, lowers the heartbeat to 1 s so its timers are armed and
# re-armed during the run.
FULL = [
    Phase("latency", 9000, 10, 1.0, ramp=15.0, hold=3.0),
    Phase("arrivals", 9000, 10, 1.0, ramp=9.0),
    Phase("throughput", 1000, 100, 0.02, ramp=1.0, relay_flags=["--heartbeat=1"]),
    Phase("memory", 5000, 2, 8.0, ramp=5.0),
    Phase("ttfe", 500, 3, 0.2, ramp=0.0, clients=1),
]
SMOKE = [
    Phase("smoke", 300, 5, 0.05, ramp=0.5, clients=1, timeout=30.0),
]


# -- /proc -----------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def machine_busy_seconds() -> float:
    """CPU-seconds all processes on the machine have used (from /proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / TICK


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE_KB


# -- processes -------------------------------------------------------------------

def _wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float = 20.0) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if needle in line:
            return line
    proc.kill()
    raise RuntimeError(f"{proc.args!r} did not print {needle!r}")


def start_upstream() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, "-m", "bench.upstream", "--port=0"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    line = _wait_for_line(proc, "listening")
    return proc, int(line.split()[1])


def start_relay(upstream_port: int, flags: list[str], log_path: Path
                ) -> tuple[subprocess.Popen[str], int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "run.py", "--port=0",
             f"--upstream-url=http://127.0.0.1:{upstream_port}/v1", *flags],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    line = _wait_for_line(proc, "listening on")
    port = int(line.split("http://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
    return proc, port


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def warm_up(url: str, mode: str) -> None:
    """One stream first, so lazy imports and first-use allocations are not
    counted as per-stream memory."""
    out = asyncio.run(LoadClient(url, mode, StreamSpec(2, 0.01)).run(1, 0.0, 0.0, 10.0))
    if out["ok"] != 1:
        raise RuntimeError(f"warm-up stream through {mode} failed: {out['errors']}")


def run_load(phase: Phase, url: str, mode: str, server_pid: int,
             profile: Path | None = None, other_pids: tuple[int, ...] = ()) -> dict[str, Any]:
    warm_up(url, mode)
    time.sleep(0.2)
    rss0 = rss_kb(server_pid)
    start_at = time.monotonic() + 1.0  # time for the client processes to start
    per = [phase.streams // phase.clients + (i < phase.streams % phase.clients)
           for i in range(phase.clients)]
    offsets = [sum(per[:i]) for i in range(len(per))]
    first_at = 0.0 if phase.hold is None else start_at + phase.ramp + phase.hold
    # Results go through files: a pipe would fill up and block a client
    # whose output (every latency sample) is larger than the pipe buffer.
    outfiles = [tempfile.TemporaryFile("w+") for _ in per]  # noqa: SIM115 -- closed below
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.client", f"--url={url}", f"--mode={mode}",
             f"--streams={n}", f"--deltas={phase.deltas}", f"--every={phase.every}",
             f"--pad={phase.pad}", f"--ramp={phase.ramp}", f"--start-at={start_at}",
             f"--timeout={phase.timeout}", f"--first-at={first_at}", f"--offset={off}",
             f"--total={phase.streams}"],
            cwd=ROOT, stdout=out, text=True)
        for n, off, out in zip(per, offsets, outfiles, strict=True)
    ]
    while time.monotonic() < start_at:
        time.sleep(0.01)
    spy = None
    if profile is not None:
        # Collapsed stacks ("raw"): greppable, and flamegraph tools read them.
        spy = subprocess.Popen(["py-spy", "record", "--pid", str(server_pid), "--rate", "250",
                                "--format", "raw", "--output", str(profile), "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cpu0 = cpu_seconds(server_pid)
    others0 = sum(cpu_seconds(p) for p in other_pids)
    busy0 = machine_busy_seconds()
    t0 = time.monotonic()
    peak = rss0
    while any(p.poll() is None for p in procs):
        peak = max(peak, rss_kb(server_pid))
        time.sleep(0.05)
    wall = time.monotonic() - t0
    cpu = cpu_seconds(server_pid) - cpu0
    ours = cpu + sum(cpu_seconds(p) for p in other_pids) - others0
    busy = machine_busy_seconds() - busy0
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=30)
    outs = []
    for p, out in zip(procs, outfiles, strict=True):
        p.wait()
        out.seek(0)
        outs.append(json.loads(out.read()))
        out.close()
    # What the rest of the machine used meanwhile (other users, the kernel's
    # own threads): this machine is shared, and that is the noise.
    foreign = busy - ours - sum(o["cpu"] for o in outs)
    return merge(outs, phase, cpu=cpu, wall=wall, rss0=rss0, peak=peak, foreign=foreign)


def merge(outs: list[dict[str, Any]], phase: Phase, **server: float) -> dict[str, Any]:
    errors: dict[str, int] = {}
    for o in outs:
        for k, v in o["errors"].items():
            errors[k] = errors.get(k, 0) + v
    lat = sorted(x for o in outs for x in o["latencies_us"])
    fb = sorted(x for o in outs for x in o["first_byte_us"])
    fd = sorted(x for o in outs for x in o["first_delta_us"])
    lag = sorted(x for o in outs for x in o["loop_lag_us"])
    deltas = sum(o["deltas"] for o in outs)
    return {
        "streams": phase.streams, "ok": sum(o["ok"] for o in outs),
        "lost": sum(o["lost"] for o in outs),
        "out_of_order": sum(o["out_of_order"] for o in outs), "errors": errors,
        "deltas": deltas, "heartbeats": sum(o["heartbeats"] for o in outs),
        "merged": sum(o["merged"] for o in outs),
        "latency_ms": pcts(lat), "first_byte_ms": pcts(fb), "first_delta_ms": pcts(fd),
        "client_cpu_s": [round(o["cpu"], 2) for o in outs],
        "client_lag_ms": pcts(lag),
        "server_cpu_s": round(server["cpu"], 3), "wall_s": round(server["wall"], 2),
        "other_cpu_s": round(max(0.0, server["foreign"]), 1),
        "server_rss_base_kb": server["rss0"], "server_rss_peak_kb": server["peak"],
        "rss_per_stream_kb": round((server["peak"] - server["rss0"]) / phase.streams, 2),
        "cpu_ms_per_1000_deltas": round(1e6 * server["cpu"] / deltas, 1) if deltas else None,
        "deltas_per_cpu_s": round(deltas / server["cpu"]) if server["cpu"] else None,
    }


def pcts(sorted_us: list[int]) -> dict[str, float]:
    if not sorted_us:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    n = len(sorted_us)
    return {"p50": round(sorted_us[n // 2] / 1000, 2),
            "p99": round(sorted_us[min(n - 1, (n * 99) // 100)] / 1000, 2),
            "max": round(sorted_us[-1] / 1000, 2)}


def run_phase(phase: Phase, log_path: Path, profile: bool = False) -> dict[str, Any]:
    upstream, up_port = start_upstream()
    try:
        direct = run_load(phase, f"http://127.0.0.1:{up_port}", "direct", upstream.pid)
        relay_proc, relay_port = start_relay(up_port, phase.relay_flags, log_path)
        try:
            prof = log_path.with_name(f"relay-{phase.name}.pyspy.txt") if profile else None
            relay = run_load(phase, f"http://127.0.0.1:{relay_port}", "relay", relay_proc.pid,
                             prof, other_pids=(upstream.pid,))
        finally:
            stop(relay_proc)
    finally:
        stop(upstream)
    return {"phase": phase.name, "describe": phase.describe(), "direct": direct, "relay": relay}


# -- report ----------------------------------------------------------------------

def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several repeats of a phase: every numeric figure is the median."""
    if len(runs) == 1:
        return runs[0]

    def med(values: list[Any]) -> Any:
        if isinstance(values[0], dict):
            return {k: med([v[k] for v in values]) for k in values[0]} if all(
                isinstance(v, dict) and v.keys() == values[0].keys() for v in values) else values[-1]
        if isinstance(values[0], (int, float)) and not isinstance(values[0], bool):
            return statistics.median(values)
        return values[-1]

    return med(runs)  # type: ignore[no-any-return]


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or a != a or b != b or b == 0:
        return ""
    return f"{a / b:.2f}x"


def render(result: dict[str, Any]) -> str:
    d, r = result["direct"], result["relay"]
    rows: list[tuple[str, str, str, str]] = []

    def row(label: str, dv: Any, rv: Any, extra: str = "") -> None:
        rows.append((label, str(dv), str(rv), extra))

    row("streams ok / asked", f"{d['ok']}/{d['streams']}", f"{r['ok']}/{r['streams']}")
    row("deltas received", d["deltas"], r["deltas"])
    row("lost / out of order", f"{d['lost']} / {d['out_of_order']}",
        f"{r['lost']} / {r['out_of_order']}")
    row("errors", d["errors"] or 0, r["errors"] or 0)
    for key, label in (("latency_ms", "delivery latency"), ("first_byte_ms", "time to first byte"),
                       ("first_delta_ms", "time to first delta")):
        for p in ("p50", "p99"):
            dv, rv = d[key][p], r[key][p]
            row(f"{label} {p} ms", dv, rv, f"{ratio(rv, dv)} (+{rv - dv:.2f} ms)")
    row("server CPU s", d["server_cpu_s"], r["server_cpu_s"], ratio(r["server_cpu_s"], d["server_cpu_s"]))
    row("server CPU ms / 1000 deltas", d["cpu_ms_per_1000_deltas"], r["cpu_ms_per_1000_deltas"],
        ratio(r["cpu_ms_per_1000_deltas"], d["cpu_ms_per_1000_deltas"]))
    row("deltas / server CPU-s", d["deltas_per_cpu_s"], r["deltas_per_cpu_s"])
    row("server RSS base -> peak MB", f"{d['server_rss_base_kb'] / 1024:.0f} -> "
        f"{d['server_rss_peak_kb'] / 1024:.0f}",
        f"{r['server_rss_base_kb'] / 1024:.0f} -> {r['server_rss_peak_kb'] / 1024:.0f}")
    row("server RSS growth / stream KB", d["rss_per_stream_kb"], r["rss_per_stream_kb"])
    row("heartbeats / merged updates", f"{d['heartbeats']} / {d['merged']}",
        f"{r['heartbeats']} / {r['merged']}")
    row("client CPU s (per process)", d["client_cpu_s"], r["client_cpu_s"])
    row("client loop lag p99 ms", d["client_lag_ms"]["p99"], r["client_lag_ms"]["p99"])
    row("wall s", d["wall_s"], r["wall_s"])
    row("other processes' CPU s (noise)", d["other_cpu_s"], r["other_cpu_s"])
    widths = [max(len(x[i]) for x in [*rows, ("", "direct", "relay", "relay vs direct")])
              for i in range(4)]
    lines = [f"== {result['phase']}: {result['describe']}"]
    header = ("", "direct", "relay", "relay vs direct")
    for cols in [header, *rows]:
        lines.append("  ".join(c.ljust(w) if i in (0, 3) else c.rjust(w)
                               for i, (c, w) in enumerate(zip(cols, widths, strict=True))).rstrip())
    return "\n".join(lines)


def targets(results: dict[str, dict[str, Any]]) -> list[str]:
    out = []

    def check(label: str, ok: bool, measured: str) -> None:
        out.append(f"  [{'met' if ok else 'MISSED'}] {label}: {measured}")

    if "latency" in results:
        d, r = results["latency"]["direct"], results["latency"]["relay"]
        added = r["latency_ms"]["p99"] - d["latency_ms"]["p99"]
        clean = r["ok"] == r["streams"] and not r["lost"] and not r["out_of_order"]
        check("9,000 streams complete, nothing lost or reordered", clean,
              f"{r['ok']}/{r['streams']} ok, {r['lost']} lost, {r['out_of_order']} out of order")
        check("added p99 delivery latency <= 50 ms", added <= 50,
              f"{added:+.1f} ms ({d['latency_ms']['p99']} -> {r['latency_ms']['p99']} ms)")
    if "throughput" in results:
        r = results["throughput"]["relay"]
        rate = r["deltas_per_cpu_s"] or 0
        check(">= 40,000 relayed deltas per relay CPU-second", rate >= 40000,
              f"{rate:,} ({r['cpu_ms_per_1000_deltas']} ms per 1,000)")
    if "memory" in results:
        r = results["memory"]["relay"]
        check("<= 16 KB RSS per held stream (5,000 held)", r["rss_per_stream_kb"] <= 16,
              f"{r['rss_per_stream_kb']} KB")
    if "ttfe" in results:
        r = results["ttfe"]["relay"]
        check("time to first event p99 well under 1 s (500 arrivals at once)",
              r["first_byte_ms"]["p99"] < 500,
              f"first byte p99 {r['first_byte_ms']['p99']} ms, "
              f"first delta p99 {r['first_delta_ms']['p99']} ms")
    return out


def correct(run: dict[str, Any]) -> bool:
    return run["ok"] == run["streams"] and not run["lost"] and not run["out_of_order"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true",
                        help="a few hundred streams, correctness only (for CI)")
    parser.add_argument("--phases", default="",
                        help="comma-separated subset of: latency,throughput,memory,ttfe")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply every phase's stream count (e.g. 0.1 for a quick look)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per phase; figures are medians")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--profile", action="store_true",
                        help="record the relay with py-spy (collapsed stacks beside the relay log;"
                             " sampling costs relay CPU, so figures are not comparable)")
    args = parser.parse_args(argv)

    if args.profile and shutil.which("py-spy") is None:
        raise SystemExit("--profile needs py-spy: pip install py-spy")
    phases = SMOKE if args.smoke else FULL
    if args.phases:
        wanted = args.phases.split(",")
        phases = [p for p in phases if p.name in wanted]
    if args.scale != 1.0:
        phases = [Phase(**{**p.__dict__, "streams": max(1, int(p.streams * args.scale))})
                  for p in phases]
    log_path = Path(tempfile.mkdtemp(prefix="tornado_sse_bench_")) / "relay.log"
    print(f"tornado_sse benchmark on {os.cpu_count()} CPU(s), Python {sys.version.split()[0]}; "
          f"relay log: {log_path}", flush=True)
    results: dict[str, dict[str, Any]] = {}
    ok = True
    for phase in phases:
        runs = [run_phase(phase, log_path, args.profile) for _ in range(max(1, args.repeat))]
        ok = ok and all(correct(x["direct"]) and correct(x["relay"]) for x in runs)
        results[phase.name] = median_run(runs)
        print(render(results[phase.name]), flush=True)
        if len(runs) > 1:
            per_run = {side: {"p99_ms": [x[side]["latency_ms"]["p99"] for x in runs],
                              "cpu_ms_per_1000": [x[side]["cpu_ms_per_1000_deltas"] for x in runs],
                              "rss_kb_per_stream": [x[side]["rss_per_stream_kb"] for x in runs]}
                       for side in ("direct", "relay")}
            results[phase.name]["per_run"] = per_run
            print(f"  ({len(runs)} runs, medians above; per run: {json.dumps(per_run)})", flush=True)
    lines = targets(results)
    if lines:
        print("targets (figures, not pass/fail of this command):")
        print("\n".join(lines))
    print("correctness:", "every stream complete, in order, nothing lost" if ok else "FAILED")
    if args.json:
        for res in results.values():
            for side in ("direct", "relay"):
                res[side].pop("_raw", None)
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0 if ok else 1
