"""`clip serve` throughput: dynamic batching vs one input per forward pass, over loopback HTTP, in one run.

Two servers run side by side on 127.0.0.1 (`--max-batch 64` and `--max-batch 1`, both `--max-wait-ms 5`), each
with the same model (default: the ViT-B-32 card with random weights; the text tower does the work). Closed-loop
clients (1, 8 and 64 at a time) each send one `/v1/embeddings` request of one prompt after another; every
configuration answers a fixed number of requests per round, and the rounds alternate between the two servers so
that a busy neighbour slows both alike. Prints requests/s (median over rounds), p50 and p99 latency over all
requests, the mean batch size the batched server ran, and the speed-up of batching.

Each server computes with `clip serve`'s default threads (torch's: one per core) unless `--threads N` says otherwise.

    python benchmarks/bench_serve.py [--model ViT-B-32] [--dtype fp32] [--threads N] [--clients 1 8 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

LABELS = ("cat", "dog", "car", "airplane", "bird", "ship", "truck", "horse", "deer", "frog", "apple", "tiger")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Server:
    """`clip serve` in a subprocess on a free loopback port."""

    def __init__(self, model: str, max_batch: int, log_dir: Path, options: list[str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log_dir / f"serve-max-batch-{max_batch}.log"
        command = [sys.executable, "-m", "clip_core", "serve", "--model", model, "--port", str(self.port)]
        command += ["--max-batch", str(max_batch), "--max-wait-ms", "5", "--log-level", "warning", *options]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)

    def wait(self, timeout: float = 900) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"clip serve exited:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=5):
                    return
            except OSError:
                time.sleep(0.5)
        raise SystemExit(f"clip serve did not start within {timeout} s")

    def batches(self) -> tuple[float, int]:
        """Inputs embedded and forward passes run so far (from /metrics)."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=60) as answer:
            text = answer.read().decode()
        total = re.search(r'^clip_batch_size_sum\{modality="text"\} ([\d.]+)$', text, re.M)
        count = re.search(r'^clip_batch_size_count\{modality="text"\} (\d+)$', text, re.M)
        return (float(total.group(1)) if total else 0.0), (int(count.group(1)) if count else 0)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=120)


class Connection:
    """One keep-alive HTTP/1.1 connection speaking just enough HTTP to POST JSON (a light client: the load
    generator shares the CPUs with the server, so its own cost must stay small)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def post(self, path: str, body: dict[str, object]) -> bytes:
        content = json.dumps(body).encode()
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        self.writer.write(f"{head}Content-Length: {len(content)}\r\n\r\n".encode() + content)
        status = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        answer = await self.reader.readexactly(length)
        if b" 200 " not in status:
            raise SystemExit(f"{path}: {status.decode().strip()} {answer[:200]!r}")
        return answer

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def load(port: int, clients: int, requests: int) -> tuple[float, list[float]]:
    """``clients`` closed-loop clients answer ``requests`` requests in all: wall seconds and each latency."""
    latencies: list[float] = []
    sent = 0
    connections = [await Connection.open(port) for _ in range(clients)]

    async def client(connection: Connection) -> None:
        nonlocal sent
        while sent < requests:
            number = sent
            sent += 1
            text = f"a photo of a {LABELS[number % len(LABELS)]}, number {number}."
            start = time.perf_counter()
            await connection.post("/v1/embeddings", {"input": text})
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(client(connection) for connection in connections))
    seconds = time.perf_counter() - start
    for connection in connections:
        await connection.close()
    return seconds, latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ViT-B-32", help="a card (random weights) or checkpoint (ViT-B-32)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64], help="concurrent clients (1 8 64)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per configuration (3)")
    parser.add_argument("--requests", type=int, default=256, help="requests per round at the most clients (256)")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="the model's dtype (fp32)")
    parser.add_argument("--threads", type=int, help="torch threads per server (clip serve's default: one per core)")
    args = parser.parse_args()
    options = ["--dtype", args.dtype] + ([] if args.threads is None else ["--threads", str(args.threads)])
    threads = f"{args.threads} torch thread(s)" if args.threads else "clip serve's default torch threads"
    with tempfile.TemporaryDirectory() as logs:
        servers = {batch: Server(args.model, batch, Path(logs), options) for batch in (64, 1)}
        try:
            for server in servers.values():
                server.wait()
                asyncio.run(load(server.port, 8, 32))  # warm up
            print(
                f"clip serve, model {args.model} ({args.dtype}, {threads} per server), loopback, "
                f"{os.cpu_count()} CPUs; one prompt per request\n"
            )
            header = "| clients | batched req/s | p50 ms | p99 ms | mean batch | max-batch 1 req/s | p50 ms | p99 ms "
            print(header + "| speed-up |")
            print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            for clients in args.clients:
                requests = max(32, args.requests * clients // max(args.clients))
                rates: dict[int, list[float]] = {batch: [] for batch in servers}
                latencies: dict[int, list[float]] = {batch: [] for batch in servers}
                inputs_before, passes_before = servers[64].batches()
                for _ in range(args.rounds):
                    for batch, server in servers.items():
                        seconds, times = asyncio.run(load(server.port, clients, requests))
                        rates[batch].append(requests / seconds)
                        latencies[batch] += times
                inputs, passes = servers[64].batches()
                mean_batch = (inputs - inputs_before) / max(passes - passes_before, 1)
                ratio = statistics.median(b / u for b, u in zip(rates[64], rates[1], strict=True))
                cells = [f"{clients}"]
                for batch in (64, 1):
                    cells += [f"{statistics.median(rates[batch]):.1f}"]
                    cells += [f"{1000 * percentile(latencies[batch], q):.1f}" for q in (0.5, 0.99)]
                    if batch == 64:
                        cells += [f"{mean_batch:.1f}"]
                print("| " + " | ".join(cells) + f" | {ratio:.2f}x |", flush=True)
        finally:
            for server in servers.values():
                server.stop()
    print("\nmean batch: inputs per forward pass of the batched server at that many clients")


if __name__ == "__main__":
    main()
