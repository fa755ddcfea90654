"""The datasets section of `make bench`: upload, mount and describe, each against its yardstick.

    results = DatasetBench(tmp, settings, n, pool_size).run()

* upload of one file of ``BENCH_DATASET_BYTES`` (2 GiB; incompressible bytes)
  through the daemon, against ``cp`` of the same file on the same disk and
  against ``cp`` that syncs (``dd conv=fsync``: the upload's blob is synced
  before it is a version), interleaved; the daemon's peak RSS (VmHWM) after;
* start latency: a hello-world run with that dataset mounted against the same
  run without, interleaved, through the daemon, with fresh containers and with
  the warm pool (which keeps a profile for the mount set), p50 and p95; and
  reading the whole file inside the sandbox against reading it on the host;
* describe of a ``BENCH_DESCRIBE_BYTES`` CSV (1 GiB): upload, then the first
  (computing) describe, timed.

Everything goes through a daemon subprocess (`tests.support.daemon`) on the
engine of the rest of the run.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ai_data_agent.client import Client
from tests.support.daemon import Daemon

GiB = 1 << 30
READ = (
    "import time\nstarted = time.perf_counter()\nsize = 0\n"
    "with open('/data/big/big.bin', 'rb') as f:\n"
    "    while chunk := f.read(1 << 20):\n        size += len(chunk)\n"
    "print(size / (time.perf_counter() - started))\n"
)


def p50_p95(values: list[float]) -> dict[str, Any]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50": round(statistics.median(ordered), 4),
        "p95": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 4),
    }


def timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def make_file(path: Path, size: int) -> Path:
    """Incompressible bytes (a rotated random block), written fast."""
    block = os.urandom(1 << 20)
    with path.open("wb") as out:
        for i in range(size >> 20):
            out.write(block[i % 251 :] + block[: i % 251])
    return path


def make_csv(path: Path, size: int) -> Path:
    rows = [
        f"2026-01-{1 + i % 28:02d},region-{i % 7},product {i % 13},{i % 97},{i * 0.37:.2f}\n"
        for i in range(10_000)
    ]
    chunk = "".join(rows).encode()
    with path.open("wb") as out:
        out.write(b"date,region,product,units,unit_price\n")
        written = 0
        while written < size:
            out.write(chunk)
            written += len(chunk)
    return path


def high_water(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


class DatasetBench:
    def __init__(self, tmp: Path, settings: dict[str, Any], n: int, pool_size: int) -> None:
        self.tmp = tmp
        self.settings = settings
        self.n = n
        self.pool_size = pool_size
        self.size = int(os.environ.get("BENCH_DATASET_BYTES", 2 * GiB))
        self.csv_size = int(os.environ.get("BENCH_DESCRIBE_BYTES", GiB))

    def upload(self, client: Client, daemon: Daemon, big: Path) -> dict[str, Any]:
        copy = self.tmp / "copy.bin"
        sync = ["dd", f"if={big}", f"of={copy}", "bs=1M", "conv=fsync", "status=none"]
        cp, synced, upload = [], [], []
        for _ in range(2):  # interleaved: load on the machine falls on each alike
            upload.append(timed(lambda: client.datasets.put("big", big)))
            cp.append(timed(lambda: subprocess.run(["cp", str(big), str(copy)], check=True)))
            copy.unlink()
            synced.append(timed(lambda: subprocess.run(sync, check=True)))
            copy.unlink()
        best = min(upload)
        return {
            "bytes": self.size,
            "upload_s": round(best, 3),
            "cp_s": round(min(cp), 3),
            "cp_fsync_s": round(min(synced), 3),
            "throughput_vs_cp": round(min(cp) / best, 3),
            "throughput_vs_cp_fsync": round(min(synced) / best, 3),
            "daemon_peak_rss_bytes": high_water(daemon.pid),
        }

    def starts(self, client: Client) -> dict[str, Any]:
        with_data, without = [], []
        client.run("print(1)", datasets=["big"])  # the first copies it onto the engine
        for _ in range(self.n + 1):
            time.sleep(0.5)  # the pool refills between requests, as on a server
            without.append(timed(lambda: client.run("print(1)")))
            time.sleep(0.5)
            with_data.append(timed(lambda: client.run("print(1)", datasets=["big"])))
        none, mounted = p50_p95(without[1:]), p50_p95(with_data[1:])
        return {"none": none, "mounted": mounted, "delta_p50_s": mounted["p50"] - none["p50"]}

    def read_speed(self, client: Client, big: Path) -> dict[str, Any]:
        inside = float(client.run(READ, datasets=["big"], timeout_s=300).stdout.strip() or 0)
        host = self.size / timed(
            lambda: subprocess.run(["cat", str(big)], stdout=subprocess.DEVNULL, check=True)
        )
        return {
            "sandbox_bytes_per_s": round(inside),
            "host_bytes_per_s": round(host),
            "ratio": round(inside / host, 3) if host else None,
        }

    def describe(self, client: Client) -> dict[str, Any]:
        path = make_csv(self.tmp / "table.csv", self.csv_size)
        client.datasets.put("table", path)
        client.run("print(1)", datasets=["table"])  # copied onto the engine first: not timed
        seconds = timed(lambda: client.datasets.describe("table"))
        rows = client.datasets.describe("table").files[0].rows
        size = path.stat().st_size
        path.unlink()
        return {"bytes": size, "seconds": round(seconds, 3), "rows": rows}

    def run(self) -> dict[str, Any]:
        self.tmp.mkdir(parents=True, exist_ok=True)
        big = make_file(self.tmp / "big.bin", self.size)
        results: dict[str, Any] = {}
        for pool in (0, self.pool_size):
            daemon = Daemon.start(
                self.tmp / f"datasets-daemon-{pool}",
                {**self.settings, "pool_size": pool, "install_mode": "cache"},
            )
            try:
                with Client(daemon.url, daemon.token, timeout=600) as client:
                    if pool == 0:
                        results["upload"] = self.upload(client, daemon, big)
                        results["read"] = self.read_speed(client, big)
                        results["describe"] = self.describe(client)
                        results["start_fresh"] = self.starts(client)
                    else:
                        client.datasets.put("big", big)
                        results["start_pool"] = self.starts(client)
            finally:
                daemon.stop()
        big.unlink()
        return results


def render(results: dict[str, Any] | None) -> list[str]:
    if not results:
        return []
    lines = ["", "datasets"]
    up = results.get("upload") or {}
    if up:
        lines.append(
            f"  upload {up['bytes'] / GiB:.1f} GiB: {up['upload_s']} s; cp {up['cp_s']} s "
            f"({up['throughput_vs_cp']}x its throughput), cp+fsync {up['cp_fsync_s']} s "
            f"({up['throughput_vs_cp_fsync']}x); daemon peak RSS "
            f"{up['daemon_peak_rss_bytes'] / (1 << 20):.0f} MB"
        )
    for key, label in (("start_fresh", "fresh containers"), ("start_pool", "warm pool")):
        entry = results.get(key) or {}
        if entry:
            lines.append(
                f"  run start, {label}: none p50 {entry['none']['p50']} s, 2 GiB mounted p50 "
                f"{entry['mounted']['p50']} s (+{entry['delta_p50_s'] * 1000:.0f} ms)"
            )
    read = results.get("read") or {}
    if read:
        lines.append(
            f"  reading it in the sandbox: {read['sandbox_bytes_per_s'] / (1 << 20):.0f} MB/s, "
            f"on the host {read['host_bytes_per_s'] / (1 << 20):.0f} MB/s ({read['ratio']}x)"
        )
    described = results.get("describe") or {}
    if described:
        lines.append(
            f"  describe of a {described['bytes'] / GiB:.1f} GiB CSV: {described['seconds']} s "
            f"({described['rows']} rows)"
        )
    return lines
