"""STOW-RS ingest, WADO-RS export and QIDO-RS query of vetpacs and Orthanc in the same run.

    .venv/bin/python bench/dicomweb_throughput.py [--images 500] [--clients 1,4] [--skip-orthanc]
                                                  [--workers N] [--database-url URL]

Prints images/s beside the spec (R-7.1.3: import >= 30/s, R-7.1.4: export >= 40/s, 250 KB images)
and the query p99 with 1024 concurrent connections (R-7.1.2a: within 7 s) measured with wrk.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import re
import resource
import shutil
import subprocess
import time
from pathlib import Path

import requests
from common import Server, corpus, multipart, orthanc_server, vetpacs_server
from pydicom import dcmread

SPEC_IMPORT, SPEC_EXPORT, SPEC_QUERY_S = 30, 40, 7.0
BATCH = 10
WARM_UP_IMAGES = 80


def uids(data: bytes) -> tuple[str, str, str]:
    import io

    ds = dcmread(io.BytesIO(data), stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


def ingest(server: Server, images: list[bytes], clients: int) -> float:
    batches = [images[i : i + BATCH] for i in range(0, len(images), BATCH)]
    session = requests.Session()

    def send(batch: list[bytes]) -> None:
        body, ctype = multipart(batch)
        r = session.post(
            f"{server.base}/studies",
            data=body,
            headers={**server.headers, "Content-Type": ctype, "Accept": "application/dicom+json"},
        )
        if r.status_code != 200:
            raise RuntimeError(f"{server.name} STOW answered {r.status_code}: {r.text[:300]}")

    start = time.perf_counter()
    with cf.ThreadPoolExecutor(clients) as pool:
        list(pool.map(send, batches))
    return len(images) / (time.perf_counter() - start)


def export(server: Server, refs: list[tuple[str, str, str]], clients: int) -> float:
    session = requests.Session()
    accept = 'multipart/related; type="application/dicom"; transfer-syntax=*'

    def get(ref: tuple[str, str, str]) -> int:
        st, se, sop = ref
        r = session.get(
            f"{server.base}/studies/{st}/series/{se}/instances/{sop}",
            headers={**server.headers, "Accept": accept},
        )
        if r.status_code != 200:
            raise RuntimeError(f"{server.name} WADO answered {r.status_code}: {r.text[:300]}")
        return len(r.content)

    start = time.perf_counter()
    with cf.ThreadPoolExecutor(clients) as pool:
        total = sum(pool.map(get, refs))
    elapsed = time.perf_counter() - start
    assert total > 0
    return len(refs) / elapsed


def wrk(
    server: Server,
    path: str,
    connections: int,
    *,
    seconds: int = 10,
    accept: str | None = None,
    script: str | None = None,
) -> tuple[float, float]:
    """wrk against one URL; returns (p99 seconds, requests/s). Fails on any non-2xx answer."""
    if not shutil.which("wrk"):
        raise RuntimeError("wrk is not installed (Debian package wrk)")
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    cmd = ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--latency", "--timeout", "30s"]
    for k, v in server.headers.items():
        cmd += ["-H", f"{k}: {v}"]
    if accept:
        cmd += ["-H", f"Accept: {accept}"]
    if script:
        cmd += ["-s", script]
    cmd.append(f"{server.base}{path}")
    run = subprocess.run(cmd, capture_output=True, text=True, check=True)
    if script and run.stderr.strip():
        # wrk runs a script it cannot load as if there were none: that would measure the wrong thing.
        raise RuntimeError(f"wrk could not run {script}: {run.stderr.strip()}")
    out = run.stdout
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors or not m:
        raise RuntimeError(f"{server.name}: failed requests under load\n{out}")
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0}[m.group(2)]
    return float(m.group(1)) * scale, float(rps.group(1)) if rps else float("nan")


def run(server: Server, images: list[bytes], clients: list[int], query_studies: list[bytes]) -> dict:
    refs = [uids(b) for b in images]
    results: dict = {}
    # Warm up every worker and thread of the server (imports, connections, caches) before measuring,
    # so the figures are the steady state of a long-running server; the same for both servers.
    ingest(server, corpus(WARM_UP_IMAGES), 4)
    for c in clients:
        # Fresh UIDs per round: re-sending the same instances would measure de-duplication.
        round_images = images if c == clients[0] else corpus(len(images))
        results[f"ingest_c{c}"] = ingest(server, round_images, c)
        if c != clients[0]:
            refs = [uids(b) for b in round_images]
    for c in clients:
        results[f"export_c{c}"] = export(server, refs, c)
    # Server capacity for export, without a Python client in the way: wrk fetching stored instances.
    st, se, sop = refs[0]
    _, results["export_wrk_c16"] = wrk(
        server,
        f"/studies/{st}/series/{se}/instances/{sop}",
        16,
        accept='multipart/related; type="application/dicom"; transfer-syntax=*',
    )
    ingest(server, query_studies, 4)
    results["query_p99_s"], results["query_rps"] = wrk(server, "/studies?limit=25", 1024)
    # Every request a different search (a StudyDate lower bound that changes each time, matching every
    # study): nothing can come from a cache.
    results["query_uncached_p99_s"], results["query_uncached_rps"] = wrk(
        server, "/studies?limit=25", 1024, script=str(Path(__file__).with_name("distinct_dates.lua"))
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--clients", default="1,4")
    parser.add_argument("--query-studies", type=int, default=1000)
    parser.add_argument("--skip-orthanc", action="store_true")
    parser.add_argument("--database-url", help="run vetpacs on this database (default: embedded SQLite)")
    parser.add_argument("--workers", type=int, help="vetpacs serve's workers (default: its own default)")
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    print(f"making {args.images} images of ~250 KB and {args.query_studies} one-image studies ...")
    images = corpus(args.images)
    query_studies = corpus(args.query_studies, per_study=1)
    print(f"average image size: {sum(map(len, images)) / len(images) / 1024:.0f} KB")
    table: dict[str, dict] = {}
    with vetpacs_server(workers=args.workers, database_url=args.database_url) as server:
        table["vetpacs"] = run(server, images, clients, query_studies)
    if not args.skip_orthanc:
        with orthanc_server() as server:
            table["orthanc"] = run(server, images, clients, query_studies)
    print()
    print(
        f"{'measure':<22}{'spec':>12}"
        + "".join(f"{k:>12}" for k in table)
        + ("   vetpacs/orthanc" if "orthanc" in table else "")
    )
    for key in table["vetpacs"]:
        spec = {
            "ingest": f">= {SPEC_IMPORT}/s",
            "export": f">= {SPEC_EXPORT}/s",
            "query_p99_s": f"<= {SPEC_QUERY_S} s",
            "query_rps": "",
            "query_uncached_p99_s": f"<= {SPEC_QUERY_S} s",
            "query_uncached_rps": "",
        }.get(key if key.startswith("query") else key.split("_")[0], "")
        row = f"{key:<22}{spec:>12}" + "".join(f"{table[k][key]:>12.3f}" for k in table)
        if "orthanc" in table:
            ratio = table["vetpacs"][key] / table["orthanc"][key]
            row += f"   {ratio:>8.2f}"
        print(row)
    print("\nimages/s for ingest_*/export_* (cN = N concurrent clients); query with 1024 connections (wrk).")


if __name__ == "__main__":
    main()
