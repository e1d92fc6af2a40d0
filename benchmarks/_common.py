"""Helpers shared by the benchmark scripts: timing and table printing."""
import statistics
import time


def timed(fn, repeat=1):
    """Seconds one call of ``fn`` takes (median of ``repeat`` calls)."""
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def alternate(variants, rounds):
    """Run each ``(name, fn)`` once per round, alternating; return medians."""
    times = {name: [] for name, _ in variants}
    for _ in range(rounds):
        for name, fn in variants:
            times[name].append(timed(fn))
    return {name: statistics.median(v) for name, v in times.items()}


def table(rows, headers):
    """Print rows (tuples) under headers, columns right-aligned."""
    cols = list(zip(*([headers] + [[str(c) for c in r] for r in rows])))
    widths = [max(len(c) for c in col) for col in cols]
    fmt = '  '.join(f'{{:<{widths[0]}}}' if i == 0 else f'{{:>{w}}}'
                    for i, w in enumerate(widths))
    print(fmt.format(*headers))
    for r in rows:
        print(fmt.format(*[str(c) for c in r]))
