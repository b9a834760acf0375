"""Ingest rounds with fresh connections: how often the clients' connections meet a busy worker.

    .venv/bin/python bench/ingest_rounds.py [--workers 2,4] [--rounds 8] [--images 200] [--clients 4]

Each round opens new connections (a new HTTP session), so each round the server's workers take them
afresh. A single run of `dicomweb_throughput.py` meets an uneven spread only now and then; this prints
every round's images/s for each worker count, alternating the servers round by round so that a
change in the machine's speed hits both alike, then the slowest and the median beside the target.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics

from common import corpus, vetpacs_server
from dicomweb_throughput import WARM_UP_IMAGES, ingest

TARGET = 300  # the ingest target, images/s with several clients


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", default="2,4", help="worker counts to compare, comma-separated")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    rates: dict[int, list[float]] = {w: [] for w in counts}
    with contextlib.ExitStack() as stack:
        servers = {w: stack.enter_context(vetpacs_server(workers=w)) for w in counts}
        # Several warm-ups, each on new connections, so that every worker has served before the rounds.
        for _ in range(3):
            for server in servers.values():
                ingest(server, corpus(WARM_UP_IMAGES), args.clients)
        for r in range(args.rounds):
            for w, server in servers.items():
                rate = ingest(server, corpus(args.images), args.clients)
                rates[w].append(rate)
                print(f"round {r + 1}, {w} workers: {rate:.0f} images/s", flush=True)
    print(f"\n{'workers':<10}{'slowest':>10}{'median':>10}{'fastest':>10}   target")
    for w, got in rates.items():
        print(f"{w:<10}{min(got):>10.0f}{statistics.median(got):>10.0f}{max(got):>10.0f}   >= {TARGET}")


if __name__ == "__main__":
    main()
