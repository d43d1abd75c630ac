#!/usr/bin/env python3
"""Hostile clients against a running reverse proxy on loopback (see hostile.sh).

  hostile.py lockout PORT PID [--idle 1100]
      opens IDLE silent connections, then times a new client's GET / and a GET
      /balancer-manager (each bounded by 60 s), and the proxy's RSS.
      With --first-byte each connection first sends one byte of a request head.
  hostile.py memory PORT PID [--clients 1000] [--head-kb 300]
      RSS of the proxy idle, then while CLIENTS connections each drip an unfinished
      HEAD_KB head (16 KB every 0.5 s, never finished), sampled every 100 ms.

Only 127.0.0.1 is ever contacted. Every phase is bounded in time.
"""
import argparse
import asyncio
import resource
import time


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def timed_get(port, path, bound=60.0):
    start = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), bound)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), bound - (time.monotonic() - start))
        writer.close()
        status = line.decode(errors="replace").strip() or "closed without an answer"
    except (asyncio.TimeoutError, OSError) as e:
        status = f"no answer ({type(e).__name__})"
    return time.monotonic() - start, status


async def open_idle(port, n, first=b""):
    conns = []
    for _ in range(n):
        try:
            # Bounded: at the proxy's cap the connection waits in the backlog, still open.
            r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
            if first:
                w.write(first)
            conns.append((r, w))
        except (asyncio.TimeoutError, OSError):
            pass
    return conns


async def lockout(args):
    before = rss_mb(args.pid)
    # With --first-byte each connection starts a request head at once: not idle, so the
    # cap cannot close it; the header timeout does.
    idle = await open_idle(args.port, args.idle, b"G" if args.first_byte else b"")
    print(f"opened {len(idle)} {'connections that sent one byte' if args.first_byte else 'idle connections'} (RSS {before:.1f} MB before)")
    await asyncio.sleep(1)
    took, status = await timed_get(args.port, "/")
    print(f"new client GET /: {took:.2f} s, {status}")
    took, status = await timed_get(args.port, "/balancer-manager")
    print(f"GET /balancer-manager: {took:.2f} s, {status}")
    alive = 0
    for r, w in idle:
        try:
            # Closed, or answered (a 408 before the close): not held any more.
            await asyncio.wait_for(r.read(1), 0.01)
        except asyncio.TimeoutError:
            alive += 1
        except OSError:
            pass
    print(f"attacking connections still open and unanswered: {alive} of {len(idle)}")
    for _, w in idle:
        w.close()


async def drip(port, head_kb, stop_at, stats):
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    except (asyncio.TimeoutError, OSError):
        stats["refused"] += 1
        return
    writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
    sent = 0
    chunk = b"a" * 16384
    try:
        while sent < head_kb * 1024 and time.monotonic() < stop_at:
            writer.write(chunk[: min(len(chunk), head_kb * 1024 - sent)])
            sent += len(chunk)
            await asyncio.wait_for(writer.drain(), 1)
            await asyncio.sleep(0.5)
        # The head is never finished: hold until the end.
        answer = await asyncio.wait_for(reader.read(64), max(0.01, stop_at - time.monotonic()))
        stats["answered" if answer else "closed"] += 1
        if answer:
            stats["statuses"].add(answer.split(b"\r\n")[0].decode(errors="replace"))
    except asyncio.TimeoutError:
        stats["held"] += 1
    except OSError:
        stats["closed"] += 1
    finally:
        writer.close()


async def memory(args):
    idle = rss_mb(args.pid)
    print(f"RSS idle: {idle:.1f} MB")
    stats = {"refused": 0, "answered": 0, "closed": 0, "held": 0, "statuses": set()}
    duration = args.head_kb / 16 * 0.5 + 10
    stop_at = time.monotonic() + duration
    tasks = [asyncio.create_task(drip(args.port, args.head_kb, stop_at, stats)) for _ in range(args.clients)]
    peak = idle
    while time.monotonic() < stop_at:
        peak = max(peak, rss_mb(args.pid))
        await asyncio.sleep(0.1)
    await asyncio.gather(*tasks)
    end = rss_mb(args.pid)
    print(f"RSS peak with {args.clients} clients dripping {args.head_kb} KB heads: {peak:.1f} MB "
          f"(+{peak - idle:.1f} MB above idle); after: {end:.1f} MB")
    print(f"clients: held to the end {stats['held']}, answered {stats['answered']} "
          f"{sorted(stats['statuses'])}, closed {stats['closed']}, refused {stats['refused']}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["lockout", "memory"])
    p.add_argument("port", type=int)
    p.add_argument("pid", type=int)
    p.add_argument("--idle", type=int, default=1100)
    p.add_argument("--first-byte", action="store_true")
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--head-kb", type=int, default=300)
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(lockout(args) if args.mode == "lockout" else memory(args))


if __name__ == "__main__":
    main()
