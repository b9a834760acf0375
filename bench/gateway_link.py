"""The clinic's line: gateway and platform in two network namespaces, 50 Mbit/s and 200 ms round trip.

R-7.1.3 (30 images/s), R-7.2.1/2 (50 Mbit/s, 200 ms). A veth pair joins a namespace running
`vetpacs-gateway run` to one running `vetpacs serve`; `tc netem` on both ends adds 100 ms each way
and limits each direction to 50 Mbit/s. DCMTK's storescu sends 600 uncompressed DX images of about
250 KB to the gateway's SCP (inside its namespace), from four storescu processes at once by default
(`--senders`: a clinic's rooms sending together; the SCP's group commit lets instances arriving
together share one queue commit, while one association's instances each wait for their own). The
clock runs from the first image sent until the gateway has the platform's confirmation of the last.
Then every SHA-256 is checked twice: the gateway marked an entry done only on the platform's
confirmation of its own hash, and here the platform's archive is read to compare each instance's
stored SHA-256 with the gateway's.

Needs root (network namespaces, tc). Where namespaces cannot be made the script says so and exits 2.
The namespaces use 10.200.77.1 and .2 on the veth pair only: no traffic leaves them.

    sudo .venv/bin/python bench/gateway_link.py [--images 600] [--parallel 16] [--senders 4]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BIN, ROOT, corpus  # noqa: E402

TARGET_PER_S = 30.0
RATE = "50mbit"
ONE_WAY_DELAY = "100ms"  # 200 ms round trip, R-7.2.2
GW_ADDR, PF_ADDR = "10.200.77.1", "10.200.77.2"
PF_PORT = 8000
DICOM_PORT = 11112
STATUS_PORT = 8765


def sh(*args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=check, capture_output=True, text=True, env=env)


class Link:
    """Two namespaces and a shaped veth pair between them; removed on close."""

    def __init__(self) -> None:
        tag = str(os.getpid())
        self.gw, self.pf = f"vpgw{tag}", f"vppf{tag}"
        self.gw_if, self.pf_if = f"vpg{tag}", f"vpp{tag}"
        self.netem = True

    def up(self) -> None:
        sh("ip", "netns", "add", self.gw)
        sh("ip", "netns", "add", self.pf)
        sh("ip", "link", "add", self.gw_if, "type", "veth", "peer", "name", self.pf_if)
        sh("ip", "link", "set", self.gw_if, "netns", self.gw)
        sh("ip", "link", "set", self.pf_if, "netns", self.pf)
        for ns, dev, addr in ((self.gw, self.gw_if, GW_ADDR), (self.pf, self.pf_if, PF_ADDR)):
            sh("ip", "-n", ns, "addr", "add", f"{addr}/30", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            # netem: half the round trip each way, 50 Mbit/s, a queue deep enough for the window.
            netem = sh("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "netem",
                       "delay", ONE_WAY_DELAY, "rate", RATE, "limit", "100000", check=False)  # fmt: skip
            if netem.returncode != 0:
                # A kernel without sch_netem: tbf caps the rate; the relay below adds the delay.
                self.netem = False
                sh("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf",
                   "rate", RATE, "burst", "64kb", "latency", "500ms")  # fmt: skip

    def down(self) -> None:
        for ns in (self.gw, self.pf):
            sh("ip", "netns", "del", ns, check=False)

    def exec(self, ns: str, *args: str) -> list[str]:
        return ["ip", "netns", "exec", ns, *args]


def relay(listen: str, port: int, target_port: int, delay_s: float) -> None:
    """Hold every byte delay_s in each direction (a kernel without netem): latency, not loss."""
    import asyncio

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def sender() -> None:
            while True:
                stamp, data = await queue.get()
                wait = stamp + delay_s - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    writer.close()
                    return
                writer.write(data)
                await writer.drain()

        task = asyncio.create_task(sender())
        try:
            while data := await reader.read(65536):
                queue.put_nowait((loop.time(), data))
        finally:
            queue.put_nowait((loop.time(), b""))
            await task

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:  # the platform is not listening yet: the gateway's own retry handles it
            client_w.close()
            return
        await asyncio.gather(pump(client_r, up_w), pump(up_r, client_w), return_exceptions=True)

    async def serve() -> None:
        server = await asyncio.start_server(handle, listen, port)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--parallel", type=int, default=16, help="the gateway's parallel uploads")
    parser.add_argument(
        "--senders", type=int, default=4, help="storescu processes sending at once (1: one modality)"
    )
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument(
        "--relay", nargs=4, metavar=("HOST", "PORT", "TARGET_PORT", "DELAY_S"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.relay:
        host, port, target, delay = args.relay
        relay(host, int(port), int(target), float(delay))
        return 0

    link = Link()
    try:
        link.up()
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        link.down()
        why = exc.stderr.strip() if isinstance(exc, subprocess.CalledProcessError) else str(exc)
        print(f"gateway_link: cannot make network namespaces here ({why}); no figure", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="vetpacs-link-"))
    procs: list[subprocess.Popen] = []
    try:
        return run(link, work, procs, args)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
        link.down()
        shutil.rmtree(work, ignore_errors=True)


def run(link: Link, work: Path, procs: list[subprocess.Popen], args: argparse.Namespace) -> int:
    data_dir = work / "platform"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VETPACS_")}
    env.update(VETPACS_DATA_DIR=str(data_dir), VETPACS_LOG_LEVEL="ERROR", VETPACS_ALLOWED_HOSTS=PF_ADDR)
    cli = str(BIN / "vetpacs")
    sh(cli, "migrate", "--verbosity", "0", env=env)
    sh(cli, "create-org", "Link Clinic", env=env)
    token = sh(cli, "create-token", "--org", "Link Clinic", env=env).stdout.strip().splitlines()[-1]
    cert = sh(
        sys.executable,
        "-c",
        "import django; django.setup();"
        "from vetpacs.apps.identity.envelope import platform_public_key_pem as p; print(p().decode())",
        env={**env, "DJANGO_SETTINGS_MODULE": "vetpacs.platform.settings"},
    ).stdout
    log = (work / "serve.log").open("wb")
    host, port = (PF_ADDR, PF_PORT) if link.netem else ("127.0.0.1", PF_PORT + 1)
    procs.append(
        subprocess.Popen(
            link.exec(link.pf, cli, "serve", "--host", host, "--port", str(port), "--workers", "2"),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    )
    if not link.netem:
        delay = str(float(ONE_WAY_DELAY.removesuffix("ms")) / 1000)
        relay_cmd = [sys.executable, __file__, "--relay", PF_ADDR, str(PF_PORT), str(port), delay]
        procs.append(subprocess.Popen(link.exec(link.pf, *relay_cmd)))
    url = f"http://{PF_ADDR}:{PF_PORT}"
    probe = link.exec(
        link.gw, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"{url}/api/v1/uploads/"
    )
    deadline = time.monotonic() + 90
    # Any HTTP answer below 500 (405 for a GET here) means the platform serves.
    while not "100" <= sh(*probe, check=False).stdout.strip() < "500":
        if time.monotonic() > deadline:
            print("gateway_link: the platform did not come up:", (work / "serve.log").read_text()[-2000:])
            return 1
        time.sleep(0.5)

    gw_dir = work / "gateway"
    gw_dir.mkdir()
    creds = gw_dir / "credentials.json"
    fd = os.open(creds, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(
            {"platform_url": url, "key_id": "link", "secret": token, "platform_public_key_pem": cert}, f
        )
    (gw_dir / "gateway.toml").write_text(
        f'dicom_host = "127.0.0.1"\ndicom_port = {DICOM_PORT}\nstatus_port = {STATUS_PORT}\n'
        f"parallel_uploads = {args.parallel}\nmin_free_bytes = 0\nretry_base_s = 1.0\nretry_cap_s = 5.0\n"
    )
    gw_log = (work / "gateway.log").open("wb")
    procs.append(
        subprocess.Popen(
            link.exec(
                link.gw, str(BIN / "vetpacs-gateway"), "run", "--config-dir", str(gw_dir), "--no-heartbeat"
            ),
            env={k: v for k, v in os.environ.items() if not k.startswith("VETPACS_")},
            stdout=gw_log,
            stderr=subprocess.STDOUT,
        )
    )
    echo = link.exec(link.gw, "echoscu", "-aec", "VETPACS_GW", "127.0.0.1", str(DICOM_PORT))
    deadline = time.monotonic() + 60
    while sh(*echo, check=False).returncode != 0:
        if time.monotonic() > deadline:
            print("gateway_link: the gateway did not come up:", (work / "gateway.log").read_text()[-2000:])
            return 1
        time.sleep(0.3)

    senders = max(1, args.senders)
    outboxes = [work / f"outbox{k}" for k in range(senders)]
    for outbox in outboxes:
        outbox.mkdir()
    for i, data in enumerate(corpus(args.images, per_study=50)):
        (outboxes[i % senders] / f"{i:05d}.dcm").write_bytes(data)
    sent_bytes = sum(p.stat().st_size for outbox in outboxes for p in outbox.iterdir())
    how = (
        "tc netem" if link.netem else "tc tbf for the rate + a relay holding bytes 100 ms each way (no netem)"
    )
    print(f"link: {RATE}, 200 ms round trip ({how}); "
          f"{args.images} images, {sent_bytes / args.images / 1024:.0f} KB each uncompressed, "
          f"from {senders} storescu at once")  # fmt: skip

    queue_db = gw_dir / "spool" / "queue.sqlite3"
    start = time.monotonic()
    stores = [
        subprocess.Popen(
            link.exec(
                link.gw, "storescu", "-aec", "VETPACS_GW", "+sd", "127.0.0.1", str(DICOM_PORT), str(outbox)
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for outbox in outboxes
    ]
    done, received_at = 0, float("nan")
    while time.monotonic() - start < args.timeout:
        with sqlite3.connect(queue_db, timeout=30) as db:
            done, failed, received = db.execute(
                "SELECT SUM(state='done'), SUM(state='failed'), COUNT(*) FROM entries"
            ).fetchone()
        done = done or 0
        if received >= args.images and math.isnan(received_at):
            received_at = time.monotonic() - start
        if done >= args.images:
            break
        time.sleep(0.2)
    elapsed = time.monotonic() - start
    for store in stores:
        store.wait(timeout=60)
    if done < args.images:
        print(f"gateway_link: only {done}/{args.images} confirmed in {args.timeout:.0f} s (failed: {failed})")
        print((work / "gateway.log").read_text()[-3000:])
        return 1

    # Every SHA-256, from both ends: what the gateway sent and confirmed against what the archive keeps.
    with sqlite3.connect(queue_db) as db:
        gateway_side = dict(
            db.execute("SELECT sop_instance_uid, upload_sha256 FROM entries WHERE state='done'")
        )
    with sqlite3.connect(data_dir / "vetpacs.sqlite3") as db:
        platform_side = dict(db.execute("SELECT sop_instance_uid, original_sha256 FROM archive_instance"))
    mismatched = [uid for uid, sha in gateway_side.items() if platform_side.get(uid) != sha]
    if len(gateway_side) != args.images or mismatched:
        print(f"gateway_link: SHA-256 check failed for {len(mismatched)} instances "
              f"({len(gateway_side)} confirmed, {len(platform_side)} archived)")  # fmt: skip
        return 1

    per_s = args.images / elapsed
    with sqlite3.connect(queue_db) as db:
        wire = db.execute("SELECT SUM(upload_size) FROM entries").fetchone()[0]
    verdict = "meets" if per_s >= TARGET_PER_S else "BELOW"
    print(f"all {args.images} received by the SCP after {received_at:.1f} s; "
          f"{wire / 1e6:.1f} MB on the wire after JPEG-LS ({sent_bytes / wire:.2f}x smaller)")  # fmt: skip
    print(f"every SHA-256 verified: {len(gateway_side)} confirmed by the platform and equal in its archive")
    print(f"gateway -> platform over {RATE}/200 ms: {args.images} images in {elapsed:.1f} s = "
          f"{per_s:.1f} images/s   (R-7.1.3 target: {TARGET_PER_S:.0f} images/s: {verdict})")  # fmt: skip
    return 0 if per_s >= TARGET_PER_S else 1


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
