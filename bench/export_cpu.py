"""Server CPU per WADO-RS instance retrieval: a measure that holds on a busy machine.

    .venv/bin/python bench/export_cpu.py [--images 200] [--seconds 10] [--connections 16]
                                         [--query-studies 1000] [--query-connections 64]

Starts vetpacs (the same `vetpacs serve` as dicomweb_throughput.py), stores --images 250 KB images with
an owner, then fetches them with wrk (16 connections) two ways: one instance over and over (what
dicomweb_throughput.py's `export_wrk_c16` does) and every stored instance in turn (`export_rotate.lua`).
It prints requests/s and the server's CPU milliseconds per request, read from /proc (user + system
time of the granian processes). Requests/s depends on what else runs on the cores; CPU per request
much less, so compare changes with the second figure when the machine is shared. With --query-studies
it does the same for distinct QIDO-RS study searches (bench/distinct_dates.lua) over that many studies.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from common import Server, corpus, vetpacs_server
from dicomweb_throughput import ingest, uids

HERE = Path(__file__).resolve().parent
ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'
TICKS = os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        for c in map(int, children):
            out.append(c)
            todo.append(c)
    return out


def cpu_seconds(pids: list[int]) -> tuple[float, float]:
    """(user, system) CPU seconds of these processes so far."""
    user = system = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user, system = user + int(fields[11]), system + int(fields[12])  # utime, stime (stat 14, 15)
    return user / TICKS, system / TICKS


def wrk(
    server: Server, path: str, *, connections: int, seconds: int, script: str | None, accept: str = ACCEPT
) -> tuple[int, float]:
    cmd = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--timeout", "30s"]
    for k, v in server.headers.items():
        cmd += ["-H", f"{k}: {v}"]
    cmd += ["-H", f"Accept: {accept}"]
    if script:
        cmd += ["-s", script]
    cmd.append(f"{server.base}{path}")
    run = subprocess.run(cmd, capture_output=True, text=True, check=True)
    if script and run.stderr.strip():
        raise RuntimeError(f"wrk could not run {script}: {run.stderr.strip()}")
    if "Non-2xx" in run.stdout:
        raise RuntimeError(f"failed requests under load\n{run.stdout}")
    requests_done = int(re.search(r"(\d+) requests in", run.stdout).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", run.stdout).group(1))  # type: ignore[union-attr]
    return requests_done, rps


def measure(
    server: Server,
    name: str,
    path: str,
    args: argparse.Namespace,
    *,
    script: str | None,
    accept: str = ACCEPT,
    connections: int | None = None,
) -> None:
    assert server.proc is not None
    pids = descendants(server.proc.pid)
    user0, sys0 = cpu_seconds(pids)
    done, rps = wrk(
        server,
        path,
        connections=connections or args.connections,
        seconds=args.seconds,
        script=script,
        accept=accept,
    )
    user1, sys1 = cpu_seconds(pids)
    user, system = 1000 * (user1 - user0) / done, 1000 * (sys1 - sys0) / done
    print(
        f"{name:<28}{rps:>10.1f} req/s {user + system:>8.3f} ms server CPU per request"
        f" ({user:.3f} user, {system:.3f} system)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--query-studies", type=int, default=0, help="also: distinct QIDO-RS searches over this many studies"
    )
    parser.add_argument("--query-connections", type=int, default=64)
    args = parser.parse_args()
    images = corpus(args.images)
    refs = [uids(b) for b in images]
    with vetpacs_server() as server:
        ingest(server, images, 4)
        st, se, sop = refs[0]
        one = f"/studies/{st}/series/{se}/instances/{sop}"
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
            root = urlsplit(server.base).path
            paths = ",\n".join(f'  "{root}/studies/{a}/series/{b}/instances/{c}"' for a, b, c in refs)
            f.write((HERE / "export_rotate.lua").read_text().replace("-- PATHS --", paths))
        try:
            for _ in range(args.rounds):
                measure(server, "same instance", one, args, script=None)
                measure(server, f"{len(refs)} instances in turn", one, args, script=f.name)
        finally:
            os.unlink(f.name)
        if args.query_studies:
            ingest(server, corpus(args.query_studies, per_study=1), 4)
            for _ in range(args.rounds):
                measure(
                    server,
                    "distinct study searches",
                    "/studies?limit=25",
                    args,
                    script=str(HERE / "distinct_dates.lua"),
                    accept="application/dicom+json",
                    connections=args.query_connections,
                )


if __name__ == "__main__":
    main()
