"""Throughput of the Strava emulator, and the cost of generating a large sandbox.

    uv run python bench/emulator_throughput.py [--duration 5] [--processes 2] [--threads 4]

1. Generation: 10,000 athletes x 28 days of history, scheduled in-process (what the first
   request for each athlete costs, summed), then the full JSON of a sample of them.
2. HTTP: starts ``strava-emulator serve`` as a subprocess on a free loopback port, lifts its
   rate limits through the admin API, and hammers ``GET /api/v3/athlete`` and
   ``GET /api/v3/athlete/activities?per_page=200`` from a bounded set of client processes x
   threads, each thread with its own keep-alive httpx2 client, for a bounded time and request
   count. Prints requests/s. On a small machine the Python clients share the CPU with the
   server, so the figures are a floor for the server's own capacity.

Everything stays on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import httpx2
from strava_emulator.clock import Clock
from strava_emulator.config import EmulatorConfig
from strava_emulator.store import Store


def bench_generation(athletes: int, days: int, sample: int) -> None:
    started = time.perf_counter()
    store = Store(EmulatorConfig(athletes=athletes, history_days=days), Clock())
    created = time.perf_counter()
    count = store.materialize_all()
    scheduled = time.perf_counter()
    sampled = 0
    for athlete in list(store.athletes.values())[:sample]:
        for act in store.history(athlete).ordered:
            store.summary_json(act)
            sampled += 1
    serialized = time.perf_counter()
    per_activity_us = (serialized - scheduled) / max(sampled, 1) * 1e6
    print(f"generation: {athletes:,} athletes x {days} days")
    print(f"  athletes created            {created - started:6.2f} s")
    print(f"  history scheduled           {scheduled - created:6.2f} s  ({count:,} activities)")
    print(
        f"  full JSON of {sample:,} athletes  {serialized - scheduled:6.2f} s  "
        f"({sampled:,} activities, {per_activity_us:.0f} us each, cached afterwards)"
    )
    print(
        f"  => all {athletes:,} athletes fully built: ~"
        f"{scheduled - created + per_activity_us * count / 1e6:.1f} s, "
        "paid lazily per athlete on first use"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(port: int, athletes: int) -> subprocess.Popen[bytes]:
    command = shutil.which("strava-emulator")
    args = [command] if command else [sys.executable, "-m", "strava_emulator.cli"]
    return subprocess.Popen(
        [*args, "serve", "--port", str(port), "--athletes", str(athletes)],
        stdout=subprocess.DEVNULL,
    )


def wait_ready(base_url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("emulator exited during start-up")
        try:
            if httpx2.get(f"{base_url}/_emulator/healthz", timeout=1).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.05)  # readiness poll
    raise TimeoutError("emulator did not become ready")


@dataclass
class Result:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0


def hammer(url: str, tokens: list[str], concurrency: int, duration: float, limit: int) -> Result:
    """``concurrency`` threads in this process, each with its own keep-alive client."""
    result = Result()
    lock = threading.Lock()
    stop_at = time.perf_counter() + duration

    def worker(index: int) -> None:
        headers = {"Authorization": f"Bearer {tokens[index % len(tokens)]}"}
        done = errors = 0
        with httpx2.Client(headers=headers, timeout=10) as client:
            while time.perf_counter() < stop_at:
                with lock:
                    if result.requests >= limit:
                        break
                    result.requests += 1
                response = client.get(url)
                done += 1
                if response.status_code != 200:
                    errors += 1
        with lock:
            result.errors += errors

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - started
    return result


def hammer_processes(
    url: str, tokens: list[str], processes: int, threads: int, duration: float, limit: int
) -> Result:
    """Client load from several processes: one Python process cannot out-run the server."""
    if processes == 1:
        return hammer(url, tokens, threads, duration, limit)
    # spawn, not fork: forking a process that already runs client threads can deadlock.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        futures = [
            pool.submit(
                hammer, url, tokens[i::processes] or tokens, threads, duration, limit // processes
            )
            for i in range(processes)
        ]
        parts = [future.result(timeout=duration + 120) for future in futures]
    return Result(
        requests=sum(p.requests for p in parts),
        errors=sum(p.errors for p in parts),
        seconds=max(p.seconds for p in parts),
    )


def bench_http(duration: float, processes: int, threads: int, limit: int, athletes: int) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    process = start_server(port, athletes)
    try:
        wait_ready(base_url, process)
        admin = httpx2.Client(base_url=f"{base_url}/_emulator", timeout=30)
        # The defaults (100 reads / 15 min) would turn the benchmark into a 429 benchmark.
        admin.put(
            "/rate-limits", json={"overall_limit": [10**9, 10**9], "read_limit": [10**9, 10**9]}
        ).raise_for_status()
        wanted = processes * threads
        ids = [a["id"] for a in admin.get("/athletes", params={"limit": wanted}).json()["items"]]
        tokens = [
            admin.post(f"/athletes/{i}/tokens", json={"scope": "read,activity:read_all"}).json()[
                "access_token"
            ]
            for i in ids
        ]
        print(
            f"http: {processes} client processes x {threads} threads (httpx2, keep-alive), "
            f"{duration:g} s or {limit:,} requests per endpoint"
        )
        for label, path in (
            ("GET /api/v3/athlete", "/api/v3/athlete"),
            (
                "GET /api/v3/athlete/activities?per_page=200",
                "/api/v3/athlete/activities?per_page=200",
            ),
        ):
            hammer(base_url + path, tokens, threads, min(1.0, duration), 200)  # warm caches
            result = hammer_processes(base_url + path, tokens, processes, threads, duration, limit)
            rate = result.requests / result.seconds
            print(
                f"  {label:<46} {rate:8.0f} req/s  "
                f"({result.requests:,} requests, {result.errors} non-200)"
            )
        admin.close()
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    # Let `timeout`/kill run the finally blocks that stop the emulator subprocess.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per endpoint")
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument("--threads", type=int, default=4, help="client threads per process")
    parser.add_argument("--requests", type=int, default=100_000, help="cap per endpoint")
    parser.add_argument("--athletes", type=int, default=10_000, help="for the generation run")
    parser.add_argument("--days", type=int, default=28, help="history days for generation")
    parser.add_argument("--sample", type=int, default=500, help="athletes fully serialised")
    parser.add_argument("--skip-generation", action="store_true")
    parser.add_argument("--skip-http", action="store_true")
    args = parser.parse_args()
    if not args.skip_generation:
        bench_generation(args.athletes, args.days, args.sample)
    if not args.skip_http:
        bench_http(args.duration, args.processes, args.threads, args.requests, athletes=25)


if __name__ == "__main__":
    main()
