"""The load benchmark's table, from run.sh's results file.

    python3 summary.py RESULTS ROUNDS DURATION CONNECTIONS

RESULTS has one line per measurement, in the order run: `name req/s p50_us p99_us cpu_us_per_req
errors`. Each figure in the table is the median over the rounds; each ratio against HAProxy is
the median over the rounds of the ratio within a round (the runs of one round are seconds
apart, so a machine that slows down between rounds does not skew the comparison).
`h2pool` (h2c members) is also compared with `h1pool` (HTTP/1.1 members) the same way, and
`ours-rr` (plain round robin) with `haproxy-rr`; the table's ratios of `ours-rr` and
`haproxy-rr` are against `haproxy-rr`.
"""

import statistics
import sys


def main() -> None:
    path, rounds, duration, conns = sys.argv[1:5]
    rows: dict[str, list[tuple[float, ...]]] = {}
    with open(path, encoding="utf-8") as results:
        for line in results:
            name, rps, p50, p99, cpu, errors = line.split()
            rows.setdefault(name, []).append(
                (float(rps), float(p50), float(p99), float(cpu), float(errors))
            )
    base = rows.get("haproxy")

    def ratio(name: str, col: int) -> str:
        # The plain round-robin cases against each other: the equal-work HAProxy does more.
        against = rows.get("haproxy-rr") if name.endswith("-rr") else base
        if not against or name not in rows:
            return "-"
        paired = [r[col] / b[col] for r, b in zip(rows[name], against) if b[col]]
        return f"{statistics.median(paired):.2f}×" if paired else "-"

    print(f"\nmedians of {rounds} interleaved rounds, wrk -t1 -c{conns} -d{duration}s, proxy on 1 CPU")
    print("| proxy | req/s | p50 µs | p99 µs | CPU µs/req | errors | req/s vs HAProxy "
          "| p99 vs HAProxy | CPU/req vs HAProxy |")
    # (ours-rr and haproxy-rr: against haproxy-rr.)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in ["ours", "haproxy", "nginx", "apache", "h1pool", "h2pool", "ours-rr", "haproxy-rr"]:
        if name not in rows:
            continue
        rps, p50, p99, cpu, errors = (statistics.median(c) for c in zip(*rows[name]))
        print(f"| {name} | {rps:,.0f} | {p50:,.0f} | {p99:,.0f} | {cpu:.1f} | {errors:.0f} "
              f"| {ratio(name, 0)} | {ratio(name, 2)} | {ratio(name, 3)} |")
    if "nginx" in rows:
        print("\nnginx (open source) sets no sticky cookie and has no active health checks.")
    if "h1pool" in rows and "h2pool" in rows:
        # Same proxy and config; members over HTTP/1.1 or h2c. Medians of per-round ratios.
        def vs_h1(col: int) -> float:
            return statistics.median(
                h2[col] / h1[col] for h2, h1 in zip(rows["h2pool"], rows["h1pool"]) if h1[col]
            )
        print(f"\nh2c members (our HTTP/2 pool) vs HTTP/1.1 members (our HTTP/1.1 pool): "
              f"{vs_h1(0):.2f}× req/s, {vs_h1(3):.2f}× CPU per request, {vs_h1(2):.2f}× p99")
    if "ours-rr" in rows and "haproxy-rr" in rows:
        def vs_rr(col: int) -> float:
            return statistics.median(
                o[col] / h[col] for o, h in zip(rows["ours-rr"], rows["haproxy-rr"]) if h[col]
            )
        print(f"\nplain round robin (ours ProxyAddHeaders Off, HAProxy without forwardfor; no "
              f"sticky, no checks): ours-rr vs haproxy-rr {vs_rr(0):.2f}× req/s, "
              f"{vs_rr(3):.2f}× CPU per request, {vs_rr(2):.2f}× p99")
    if "ours" in rows and "apache" in rows:
        paired = [o[0] / a[0] for o, a in zip(rows["ours"], rows["apache"])]
        print(f"\nours vs Apache httpd: {statistics.median(paired):.2f}× req/s")


if __name__ == "__main__":
    main()
