"""Load benchmark for tornado_sse: the same load straight to a fake upstream and
through the relay, measured side by side. Run ``python -m bench --help``.

Three kinds of process, so none of them measures itself: :mod:`bench.upstream`
(the fake OpenAI-compatible upstream, stamping every delta with its send time),
:mod:`bench.client` (opens N streams and checks every delta), and the driver
(:mod:`bench.driver`) that starts them, samples CPU and memory from ``/proc``
and prints the comparison. Loopback only; every phase is bounded in streams and
seconds.
"""
