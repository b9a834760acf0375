"""Where a distinct (uncached) QIDO-RS study search spends its CPU: cProfile of the WSGI application.

    .venv/bin/python bench/profile_query.py [--studies 1000] [--requests 1000] [--sort tottime] [--top 40]

Stores --studies one-image studies with an owner through a real `vetpacs serve`, stops it, then calls the
same WSGI application in this process with `/studies?limit=25&StudyDate=<a different lower bound each
time>` (as bench/distinct_dates.lua does), so no cached answer serves any request.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import time

from common import corpus
from profile_export import call_in_process, kept_data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--studies", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    data, headers = kept_data(corpus(args.studies, per_study=1))
    call = call_in_process(data, headers, accept="application/dicom+json")
    counter = iter(range(10**9))

    def one() -> None:
        n = next(counter)
        date = f"{1000 + n // 336:04d}{1 + n // 28 % 12:02d}{1 + n % 28:02d}"
        call("/dicomweb/studies", f"limit=25&StudyDate={date}-")

    for _ in range(20):
        one()
    prof = cProfile.Profile()
    start = time.process_time()
    prof.enable()
    for _ in range(args.requests):
        one()
    prof.disable()
    print(f"{1000 * (time.process_time() - start) / args.requests:.3f} ms CPU per search (profiler on)")
    start = time.process_time()
    for _ in range(args.requests):
        one()
    print(f"{1000 * (time.process_time() - start) / args.requests:.3f} ms CPU per search (profiler off)")
    pstats.Stats(prof).sort_stats(args.sort).print_stats(args.top)
    shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
