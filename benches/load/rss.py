#!/usr/bin/env python3
"""Idle keep-alive client connections against a running proxy on loopback (see rss.sh).

  rss.py PORT PID [PID ...] [--clients 10000] [--concurrency 100] [--hold 3]

Reads the proxy's RSS (VmRSS of every PID given and of their children), opens CLIENTS
connections to 127.0.0.1:PORT, sends one `GET /` on each (at most CONCURRENCY at once) and
reads its whole answer, so that each is a keep-alive connection that has served a request;
holds them all idle for HOLD seconds, reads the RSS again, and prints one line:

  clients=N served=N rss_before_kb=N rss_after_kb=N bytes_per_conn=N member_conns=N

`member_conns` is the proxy's established connections to anything but PORT (its member
connections) when the RSS is read. Only 127.0.0.1 is ever contacted; every wait is bounded.
"""
import argparse
import asyncio
import os
import resource
import time


def pids_of(roots):
    """The PIDs given and their children (HAProxy and nginx fork)."""
    found = list(roots)
    for pid in roots:
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                found += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return found


def rss_kb(roots):
    total = 0
    for pid in pids_of(roots):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def member_conns(roots, port):
    """Established TCP connections of the proxy's processes to another port than its own."""
    inodes = set()
    for pid in pids_of(roots):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            pass
    n = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            if state == "01" and inode in inodes and int(local.split(":")[1], 16) != port:
                n += 1
    return n


async def serve_one(port, bound):
    """One connection that has served one request, kept open."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), bound)
    writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), bound)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if not head.startswith(b"HTTP/1.1 200"):
        raise OSError(head.split(b"\r\n")[0].decode(errors="replace"))
    await asyncio.wait_for(reader.readexactly(length), bound)
    return reader, writer


async def main(args):
    before = rss_kb(args.pids)
    gate = asyncio.Semaphore(args.concurrency)
    errors = []

    async def one():
        async with gate:
            try:
                return await serve_one(args.port, 30)
            except (asyncio.TimeoutError, OSError, asyncio.IncompleteReadError) as e:
                errors.append(repr(e))
                return None

    start = time.monotonic()
    conns = [c for c in await asyncio.gather(*(one() for _ in range(args.clients))) if c]
    opened = time.monotonic() - start
    await asyncio.sleep(args.hold)
    after = rss_kb(args.pids)
    members = member_conns(args.pids, args.port)
    # Still open? A proxy that closed idle connections would have freed their memory.
    alive = sum(1 for r, _ in conns if not r.at_eof())
    per_conn = (after - before) * 1024 / max(len(conns), 1)
    print(f"clients={args.clients} served={len(conns)} alive={alive} rss_before_kb={before} "
          f"rss_after_kb={after} bytes_per_conn={per_conn:.0f} member_conns={members} "
          f"open_s={opened:.1f}")
    if errors:
        print(f"errors={len(errors)} first={errors[0]}")
    for _, w in conns:
        w.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("pids", type=int, nargs="+")
    p.add_argument("--clients", type=int, default=10000)
    p.add_argument("--concurrency", type=int, default=100)
    p.add_argument("--hold", type=float, default=3.0)
    a = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = a.clients + 1024
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, soft), max(want, hard)))
    asyncio.run(main(a))
