// Streaming charts (uPlot) whose cost per redraw stays small and constant however long the run.
// push() only appends to arrays; flush() redraws, and only when there are new points (the caller
// decides how often: train.js at most ten times a second). A long line series is decimated before
// uPlot sees it, to its lowest and highest point per pixel column, so a redraw costs the same at
// epoch 1 and epoch 200. Sparse point series (one per epoch) are drawn whole. The container says
// what it holds, for tests and tools: data-points (points drawn), data-length (points held) and
// data-redraws (redraws so far).
import uPlot from './vendor/uPlot.esm.js';

export class LiveChart {
  /** series: [{label, stroke, points?}], e.g. batch loss (line) and val loss (epoch points). */
  constructor(container, { title, series, yRange }) {
    this.container = container;
    this.kinds = series.map((s) => (s.points ? 'points' : 'line'));
    this.series = series.map(() => ({ x: [], y: [] }));
    this.length = 0;
    this.redraws = 0;
    this.dirty = false;
    this.shown = -1;
    const opts = {
      title,
      width: Math.max(container.clientWidth, 280),
      height: 200,
      scales: { x: { time: false }, y: yRange ? { range: yRange } : {} },
      axes: [{ label: 'epoch', size: 36 }, { size: 48 }],
      legend: { live: false },
      series: [
        { label: 'epoch', value: (u, v) => (v == null ? '–' : v.toFixed(2)) },
        ...series.map((s) => ({
          label: s.label,
          stroke: s.stroke,
          width: s.points ? 0 : 1.5,
          spanGaps: true,
          points: s.points ? { show: true, size: 7, fill: s.stroke, stroke: s.stroke } : { show: false },
          value: (u, v) => (v == null ? '–' : v.toFixed(4)),
        })),
      ],
    };
    this.plot = new uPlot(opts, [[], ...series.map(() => [])], container);
    this.describe(0);
    new ResizeObserver(() => {
      const w = Math.max(container.clientWidth, 280);
      if (w === this.plot.width) return;
      this.plot.setSize({ width: w, height: 200 });
      this.dirty = true; // the decimation depends on the width
      this.flush();
    }).observe(container);
  }

  /** Append one x with a value per series (null where a series has none). */
  push(x, values) {
    values.forEach((v, i) => {
      if (v === null || v === undefined) return;
      this.series[i].x.push(x);
      this.series[i].y.push(v);
      this.length++;
    });
    this.dirty = true;
  }

  reset() {
    this.series = this.series.map(() => ({ x: [], y: [] }));
    this.length = 0;
    this.dirty = true;
  }

  /** Redraw if there are new points; returns whether it did. */
  flush() {
    if (!this.dirty) return false;
    this.dirty = false;
    const columns = Math.max(1, Math.round(this.plot.bbox.width / (window.devicePixelRatio || 1)) || this.plot.width);
    const data = aligned(this.series.map((s, i) => (this.kinds[i] === 'line' ? decimate(s.x, s.y, columns) : s)));
    this.plot.setData(data);
    this.redraws++;
    this.describe(data[0].length);
    return true;
  }

  /** The data-* attributes, written only when they change. */
  describe(shown) {
    const d = this.container.dataset;
    if (shown !== this.shown) { d.points = String(shown); this.shown = shown; }
    d.length = String(this.length);
    d.redraws = String(this.redraws);
  }
}

/**
 * At most two points per pixel column of [x0, xn], its lowest and highest in x order (min/max
 * decimation): the line through them fills the same pixel columns, the same heights, as the line
 * through all of them. A series of under two points per column comes back as it is.
 */
export function decimate(xs, ys, columns) {
  const n = xs.length;
  if (n <= 2 * columns) return { x: xs, y: ys };
  const x0 = xs[0];
  const scale = columns / (xs[n - 1] - x0 || 1);
  const column = (x) => Math.min(columns - 1, Math.floor((x - x0) * scale));
  const outX = [], outY = [];
  let i = 0;
  while (i < n) {
    const col = column(xs[i]);
    let lo = i, hi = i;
    for (i++; i < n && column(xs[i]) === col; i++) {
      if (ys[i] < ys[lo]) lo = i;
      if (ys[i] > ys[hi]) hi = i;
    }
    const a = Math.min(lo, hi), b = Math.max(lo, hi);
    outX.push(xs[a]); outY.push(ys[a]);
    if (b !== a) { outX.push(xs[b]); outY.push(ys[b]); }
  }
  return { x: outX, y: outY };
}

/** uPlot's data: one ascending x array, and per series a y array with null where it has no point. */
function aligned(series) {
  const total = series.reduce((n, s) => n + s.x.length, 0);
  const x = new Array(total);
  const ys = series.map(() => new Array(total).fill(null));
  const at = series.map(() => 0);
  for (let k = 0; k < total; k++) { // a k-way merge by x (k is 2 here)
    let best = -1;
    for (let s = 0; s < series.length; s++) {
      if (at[s] < series[s].x.length && (best < 0 || series[s].x[at[s]] < series[best].x[at[best]])) best = s;
    }
    x[k] = series[best].x[at[best]];
    ys[best][k] = series[best].y[at[best]];
    at[best]++;
  }
  return [x, ...ys];
}
