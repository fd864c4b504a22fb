"""Thinning a long metric series for a chart: its lowest and highest point per column (min/max decimation).

A chart `points / 2` columns wide draws the same line through the kept points as through all of
them: the same columns, the same heights. The page's charts.js `decimate()` is the same
function, so a series thinned here and again there keeps its shape.
"""

from __future__ import annotations


def thin(xs: list[float], ys: list[float], points: int) -> tuple[list[float], list[float]]:
    """At most `points` of (xs, ys), xs ascending: per column of x its min and max, in x order."""
    n = len(xs)
    columns = max(1, points // 2)
    if n <= points:
        return list(xs), list(ys)
    x0 = xs[0]
    scale = columns / ((xs[-1] - x0) or 1)
    out_x: list[float] = []
    out_y: list[float] = []
    i = 0
    while i < n:
        col = min(columns - 1, int((xs[i] - x0) * scale))
        lo = hi = i
        i += 1
        while i < n and min(columns - 1, int((xs[i] - x0) * scale)) == col:
            if ys[i] < ys[lo]:
                lo = i
            if ys[i] > ys[hi]:
                hi = i
            i += 1
        a, b = min(lo, hi), max(lo, hi)
        out_x.append(xs[a])
        out_y.append(ys[a])
        if b != a:
            out_x.append(xs[b])
            out_y.append(ys[b])
    return out_x, out_y
