"""A map of how many spatial-index entries lie where, for sizing the first window of a
nearest-k search (``SpatiaLiteStore._nearest_rows``).

A city's resources are not spread evenly: the centre holds a hundred times more per km² than
the edge. A first window sized from the average density is far too large in the centre (the
R*Tree scans every entry of it, ~0.6 us each) and far too small at the edge (a second and third
window follow). The map counts the entries per cell of a grid over the data (from the R*Tree's
leaf pages, parsed by numpy: ~30 ms per 100,000 entries), summed into a summed-area table: it
tells how many entries a window holds in O(1), so the search can pick a window that holds
about what it needs.

Only a hint: the search is exact whatever the map says (a window that turns out too small is
grown, one too large is read only in part), so a map a minute old is as good as a new one.
"""
from __future__ import annotations

import math

import numpy as np

#: Cells along the longer side of the grid.
GRID_CELLS = 512
#: The grid covers all entries, or when a few lie far away (a resource in another city), which
#: must not stretch it until the city is one cell, these quantiles and half their span again.
_EXTENT_QUANTILES = (0.001, 0.999)


class DensityMap:
    """Expected index entries per lon/lat window, from the entries' centres ``x``, ``y``."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        (x0, x1), (y0, y1) = _extent(x), _extent(y)
        self.x0, self.y0 = x0, y0
        self.cell = max(x1 - x0, y1 - y0, 1e-6) / GRID_CELLS
        self.nx = max(1, math.ceil((x1 - x0) / self.cell))
        self.ny = max(1, math.ceil((y1 - y0) / self.cell))
        per_cell, _, _ = np.histogram2d(
            y, x, bins=(self.ny, self.nx),
            range=((self.y0, self.y0 + self.ny * self.cell),
                   (self.x0, self.x0 + self.nx * self.cell)))
        # sat[j, i]: entries in cells [0, j) x [0, i) (entries off the grid are not counted)
        self._sat = np.zeros((self.ny + 1, self.nx + 1))
        self._sat[1:, 1:] = per_cell.cumsum(0).cumsum(1)
        self.total = float(self._sat[-1, -1])

    def _below(self, x: float, y: float) -> float:
        """Entries west and south of (x, y) in cell units (bilinear within a cell: exact for
        entries spread evenly over each cell)."""
        x = min(max(x, 0.0), float(self.nx))
        y = min(max(y, 0.0), float(self.ny))
        i, j = min(int(x), self.nx - 1), min(int(y), self.ny - 1)
        fx, fy = x - i, y - j
        s = self._sat
        return ((s[j, i] * (1 - fx) + s[j, i + 1] * fx) * (1 - fy)
                + (s[j + 1, i] * (1 - fx) + s[j + 1, i + 1] * fx) * fy)

    def entries(self, box: tuple[float, float, float, float]) -> float:
        """Expected entries in the window (minlon, minlat, maxlon, maxlat)."""
        x0 = (box[0] - self.x0) / self.cell
        x1 = (box[2] - self.x0) / self.cell
        y0 = (box[1] - self.y0) / self.cell
        y1 = (box[3] - self.y0) / self.cell
        return max(self._below(x1, y1) - self._below(x0, y1) - self._below(x1, y0)
                   + self._below(x0, y0), 0.0)

    def radius(self, lon: float, lat: float, target: float, kx: float, ky: float,
               start: float) -> float | None:
        """About the smallest half-side (metres; ``kx``, ``ky`` metres per degree) of a square
        window around (lon, lat) that holds ``target`` entries (within 10 %); None when the
        whole map holds fewer."""
        if self.total < target:
            return None
        x1, y1 = self.x0 + self.nx * self.cell, self.y0 + self.ny * self.cell
        limit = 2 * max(max(abs(lon - self.x0), abs(lon - x1)) * kx,
                        max(abs(lat - self.y0), abs(lat - y1)) * ky)

        def holds(r: float) -> float:
            return self.entries((lon - r / kx, lat - r / ky, lon + r / kx, lat + r / ky))

        low, high = 0.0, max(start, 1.0)
        while holds(high) < target:  # doubling up to a window that holds enough
            low, high = high, high * 2.0
            if high > limit:
                return None
        if low == 0.0:  # halving down to one that does not
            low = high / 2.0
            while low > 1.0 and holds(low) >= target:
                low, high = low / 2.0, low
        while high > low * 1.1:  # bisection (in ratio) to within 10 %
            middle = math.sqrt(low * high)
            if holds(middle) >= target:
                high = middle
            else:
                low = middle
        return high


def _extent(values: np.ndarray) -> tuple[float, float]:
    lo, hi = (float(v) for v in np.quantile(values, _EXTENT_QUANTILES))
    margin = (hi - lo) / 2
    return (max(float(values.min()), lo - margin) - 1e-9,
            min(float(values.max()), hi + margin) + 1e-9)
