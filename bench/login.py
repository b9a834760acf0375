"""1024 simultaneous logins of distinct users against a running platform (R-7.1.2a, issue 3).

Starts `vetpacs serve` on loopback with its own data directory, creates N users (radiologists, so
no MFA step), fetches each one's login page (CSRF cookie and token), then posts all N logins at
once and times each until its answer. Prints p50/p95/p99 beside the standard's 7 s, logins per
second (and per core), and the argon2id cost of one hash on this machine, so the cores needed for
1024 logins within 7 s can be stated.

    .venv/bin/python bench/login.py [--users 1024] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import BIN, free_port, percentile, wait_http  # noqa: E402

SPEC_SECONDS = 7.0
PROBES: list[float] = []
RETRIES: list[
    int
] = []  # one entry per 503 answered  # response times of the other user's page loads during the flood
PASSWORD = "Bench!Login7x"  # noqa: S105 - a benchmark's throwaway users on loopback

SETUP = """
import os, sys, time
import django
django.setup()
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from vetpacs.apps.orgs.models import Membership, Organisation
n, password = int(sys.argv[1]), sys.argv[2]
org = Organisation.objects.create(name="Bench Clinic")
User = get_user_model()
# One hash per user (own salt), made in this process: the same cost the login will verify.
users = User.objects.bulk_create(
    [User(username=f"bench{i:04d}", password=make_password(password)) for i in range(n)]
)
Membership.objects.bulk_create(
    [Membership(user=u, organisation=org, role="radiologist") for u in users]
)
print(len(users))
"""


def argon2_cost(samples: int = 20) -> float:
    """Seconds of one argon2id verification at the platform's parameters, on one core."""
    from argon2 import PasswordHasher, Type

    from vetpacs.apps.accounts.hashers import OWASP_MEMORY_KIB, OWASP_PARALLELISM, OWASP_TIME_COST

    ph = PasswordHasher(
        time_cost=OWASP_TIME_COST, memory_cost=OWASP_MEMORY_KIB, parallelism=OWASP_PARALLELISM, type=Type.ID
    )
    encoded = ph.hash(PASSWORD)
    start = time.perf_counter()
    for _ in range(samples):
        ph.verify(encoded, PASSWORD)
    return (time.perf_counter() - start) / samples


async def run_logins(base: str, n: int, prepare_concurrency: int = 64) -> tuple[list[float], int, float]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=600)
    sessions = [
        aiohttp.ClientSession(
            connector=connector,
            connector_owner=False,
            timeout=timeout,
            cookie_jar=aiohttp.CookieJar(unsafe=True),
        )
        for _ in range(n)
    ]
    tokens: list[str] = [""] * n
    gate = asyncio.Semaphore(prepare_concurrency)

    async def prepare(i: int) -> None:
        async with gate, sessions[i].get(f"{base}/login/") as resp:
            text = await resp.text()
            tokens[i] = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', text).group(1)

    await asyncio.gather(*(prepare(i) for i in range(n)))
    start = asyncio.Event()
    times: list[float] = []
    ok = 0

    async def log_in(i: int) -> None:
        """One user: post the form; on 503 (every hashing place taken) wait Retry-After and post
        again, as the page asks. The time counted runs from the first post to the answer."""
        nonlocal ok
        await start.wait()
        t0 = time.perf_counter()
        data = {"csrfmiddlewaretoken": tokens[i], "username": f"bench{i:04d}", "password": PASSWORD}
        while True:
            async with sessions[i].post(
                f"{base}/login/", data=data, allow_redirects=False, headers={"Referer": f"{base}/login/"}
            ) as resp:
                await resp.read()
                if resp.status != 503:
                    break
                RETRIES.append(i)
                wait = float(resp.headers.get("Retry-After", "1"))
            await asyncio.sleep(wait * random.uniform(0.5, 1.5))
        times.append(time.perf_counter() - t0)
        ok += resp.status == 302 and resp.headers.get("Location") == "/"

    probes: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        """Another user opening a page (no password to hash) every half second during the flood."""
        async with aiohttp.ClientSession(timeout=timeout) as other:
            await start.wait()
            while not done.is_set():
                t0 = time.perf_counter()
                async with other.get(f"{base}/login/") as resp:
                    await resp.read()
                probes.append(time.perf_counter() - t0)
                await asyncio.sleep(0.5)

    tasks = [asyncio.create_task(log_in(i)) for i in range(n)]
    prober = asyncio.create_task(probe())
    await asyncio.sleep(0.5)  # every task is waiting at the gate
    wall0 = time.perf_counter()
    start.set()
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - wall0
    done.set()
    await prober
    PROBES.extend(probes)
    for s in sessions:
        await s.close()
    await connector.close()
    return times, ok, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    opts = parser.parse_args()
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()
    cost_before = argon2_cost()
    work = Path(tempfile.mkdtemp(prefix="vetpacs-bench-login-"))
    env = {**os.environ, "VETPACS_DATA_DIR": str(work), "VETPACS_LOG_LEVEL": "ERROR"}
    env.setdefault("DJANGO_SETTINGS_MODULE", "vetpacs.platform.settings")
    cli = str(BIN / "vetpacs")
    subprocess.run([cli, "migrate", "--verbosity", "0"], env=env, check=True)
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", SETUP, str(opts.users), PASSWORD], env=env, check=True, capture_output=True
    )
    print(f"created {opts.users} users in {time.perf_counter() - t0:.1f} s", flush=True)
    port = free_port()
    proc = subprocess.Popen(
        [cli, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(opts.workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/login/")
        times, ok, wall = asyncio.run(run_logins(base, opts.users))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    cost = min(cost_before, argon2_cost())  # the quieter of the two readings
    rate = ok / wall if wall else 0.0
    per_core = rate / cores
    print(f"logins: {ok} of {opts.users} succeeded, {opts.workers} serve workers, {cores} cores")
    load = ", ".join(f"{x:.1f}" for x in load_before)
    print(f"load average before: {load}; after: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'measure':<40}{'spec':>10}{'vetpacs':>12}")
    for p in (50, 95, 99):
        print(f"{f'login response p{p} (s)':<40}{'<= 7':>10}{percentile(times, p):>12.3f}")
    print(f"{'all logins done (s)':<40}{'':>10}{wall:>12.3f}")
    print(f"{'503 busy answers (retried)':<40}{'':>10}{len(RETRIES):>12d}")
    for p in (50, 99):
        print(f"{f'other page during the flood p{p} (s)':<40}{'':>10}{percentile(PROBES, p):>12.3f}")
    print(f"{'logins/s':<40}{'':>10}{rate:>12.1f}")
    print(f"{'logins/s per core':<40}{'':>10}{per_core:>12.1f}")
    print(f"{'argon2id cost per hash (ms, 1 core)':<40}{'':>10}{cost * 1000:>12.1f}")
    need_hash = opts.users * cost / SPEC_SECONDS
    need_all = opts.users / (SPEC_SECONDS * per_core) if per_core else float("inf")
    print(
        f"cores for {opts.users} logins within {SPEC_SECONDS:.0f} s: {need_all:.2f} at the measured rate "
        f"(argon2 alone: {need_hash:.2f})"
    )


if __name__ == "__main__":
    main()
