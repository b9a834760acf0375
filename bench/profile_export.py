"""Where a WADO-RS instance retrieval spends its CPU: cProfile of the WSGI application, in process.

    .venv/bin/python bench/profile_export.py [--images 50] [--requests 2000] [--sort tottime] [--top 40]

Stores --images 250 KB images with an owner through a real `vetpacs serve`, stops it, then calls the
same WSGI application in this process for --requests retrievals (cycling over the images), as the
owning clinic with a bearer token, and prints the profile and the CPU milliseconds per request.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from common import corpus, vetpacs_server
from dicomweb_throughput import ingest, uids

ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def kept_data(images: list[bytes]) -> tuple[Path, dict[str, str]]:
    """Store the images through a real `vetpacs serve`, stop it, keep its data: (data dir, auth headers)."""
    with vetpacs_server() as server:
        ingest(server, images, 2)
        assert server.workdir is not None and server.proc is not None
        server.proc.terminate()
        server.proc.wait()
        # Server.stop() removes the data directory: move it aside first.
        kept = server.workdir.with_name(server.workdir.name + "-kept")
        server.workdir.rename(kept)
        return kept, dict(server.headers)


def call_in_process(data: Path, headers: dict[str, str], accept: str = ACCEPT) -> Callable[..., None]:
    """A function that sends one GET through the platform's WSGI application, here, on that data."""
    os.environ["VETPACS_DATA_DIR"] = str(data)
    os.environ["DJANGO_SETTINGS_MODULE"] = "vetpacs.platform.settings"
    from vetpacs.platform.wsgi import application

    def call(path: str, query: str = "") -> None:
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "127.0.0.1:8000",
            "HTTP_AUTHORIZATION": headers["Authorization"],
            "HTTP_ACCEPT": accept,
            "wsgi.input": io.BytesIO(),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "SERVER_PROTOCOL": "HTTP/1.1",
        }
        status: list[str] = []
        body = application(environ, lambda s, h, *a: status.append(s))
        for _ in body:
            pass
        if hasattr(body, "close"):
            body.close()
        assert status[0].startswith("200"), status

    return call


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    images = corpus(args.images)
    refs = [uids(b) for b in images]
    data, headers = kept_data(images)
    call = call_in_process(data, headers)
    paths = [f"/dicomweb/studies/{a}/series/{b}/instances/{c}" for a, b, c in refs]
    for p in paths[:20]:
        call(p)  # warm: connections, caches
    prof = cProfile.Profile()
    start = time.process_time()
    prof.enable()
    for i in range(args.requests):
        call(paths[i % len(paths)])
    prof.disable()
    used = time.process_time() - start
    print(f"{1000 * used / args.requests:.3f} ms CPU per request (profiler on)")
    start = time.process_time()
    for i in range(args.requests):
        call(paths[i % len(paths)])
    print(f"{1000 * (time.process_time() - start) / args.requests:.3f} ms CPU per request (profiler off)")
    pstats.Stats(prof).sort_stats(args.sort).print_stats(args.top)
    shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
