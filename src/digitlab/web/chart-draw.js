// Drawing a live chart on a 2D canvas, and the state it draws from. Shared by the chart worker
// (chart-worker.js: an OffscreenCanvas per chart, so that neither drawing nor its paint and
// commit ever run on the page's main thread) and, where OffscreenCanvas is missing, the page
// itself (charts.js). No DOM: it runs in a worker.
//
// A ChartState holds every point of its series and takes messages: {type: 'append', points:
// [[series, xs, ys]...]}, 'load' (a series at once), 'reset', 'size' ({width, dpr}), 'show'
// ({series, show}). draw() paints the canvas: a title, the y axis with round ticks (or a fixed
// range), the x axis in epochs, faint grid lines, each shown series as a line thinned to its
// lowest and highest point per pixel column, dots where a series is sparse. What it draws stays
// the same size however long the run (thinning it walks every point once, in the worker).

export const HEIGHT = 220; // CSS px, the title included
const TITLE = 26, X_AXIS = 36, Y_AXIS = 52, RIGHT = 12;
const INK = '#1d2330', MUTED = '#5b6472', GRID = 'rgba(0, 0, 0, 0.08)';
const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';

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

/** Round tick values in [lo, hi], about `count` of them: steps of 1, 2 or 5 times a power of ten. */
export function ticks(lo, hi, count, { integer = false } = {}) {
  const span = hi - lo;
  if (!(span > 0) || !Number.isFinite(span)) return { values: [lo], step: 1 };
  const raw = span / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  let step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) || 10 * power;
  if (integer) step = Math.max(1, Math.round(step));
  const values = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) values.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return { values, step };
}

const decimals = (step) => Math.max(0, Math.min(4, -Math.floor(Math.log10(step) + 1e-9)));

export class ChartState {
  /** spec: {title, yRange?: [lo, hi], series: [{label, stroke, width?, dash?, points?}]} */
  constructor(spec, width, dpr) {
    this.spec = spec;
    this.series = spec.series.map(() => ({ x: [], y: [] }));
    this.shown = spec.series.map(() => true);
    this.width = width;
    this.dpr = dpr;
    this.redraws = 0;
  }

  apply(m) {
    switch (m.type) {
      case 'append':
        for (const [i, xs, ys] of m.points) {
          const s = this.series[i];
          for (let k = 0; k < xs.length; k++) { s.x.push(xs[k]); s.y.push(ys[k]); }
        }
        break;
      case 'load': this.series[m.series] = { x: m.x, y: m.y }; break;
      case 'reset': this.series = this.spec.series.map(() => ({ x: [], y: [] })); break;
      case 'size': this.width = m.width; this.dpr = m.dpr; break;
      case 'show': this.shown[m.series] = m.show; break;
      default:
    }
  }

  /**
   * Paint `canvas` (its 2D context `ctx`); returns {points: the points drawn, ms: the drawing's
   * time, waitMs: the time its first operation took (clearing, or a new size's backing store), in
   * which an OffscreenCanvas may wait for the compositor to hand its last frame back}.
   */
  draw(canvas, ctx) {
    const t0 = performance.now();
    const { width, dpr } = this;
    const pw = Math.round(width * dpr), ph = Math.round(HEIGHT * dpr);
    if (canvas.width !== pw || canvas.height !== ph) { canvas.width = pw; canvas.height = ph; } // clears it
    else ctx.clearRect(0, 0, pw, ph);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0); // here the canvas may wait for the compositor: before the drawing's clock
    const t1 = performance.now();
    const left = Y_AXIS, top = TITLE, right = width - RIGHT, bottom = HEIGHT - X_AXIS;
    const plotWidth = Math.max(1, right - left), plotHeight = Math.max(1, bottom - top);

    ctx.fillStyle = INK;
    ctx.font = `bold 15px ${FONT}`;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    ctx.fillText(this.spec.title, left + plotWidth / 2, TITLE / 2);

    // what is drawn: each shown series thinned to the plot's pixel columns
    const columns = Math.max(1, Math.round(plotWidth));
    const drawn = this.series.map((s, i) => (this.shown[i] && s.x.length ? decimate(s.x, s.y, columns) : null));
    let xMax = 0, yMin = Infinity, yMax = -Infinity;
    for (const d of drawn) {
      if (!d) continue;
      xMax = Math.max(xMax, d.x[d.x.length - 1]);
      for (const v of d.y) { if (v < yMin) yMin = v; if (v > yMax) yMax = v; }
    }
    let xHi = xMax > 0 ? xMax : 1;
    if (xHi > 1) xHi = Math.ceil(xHi - 1e-9); // whole epochs once past the first
    let [yLo, yHi] = this.spec.yRange || [yMin, yMax];
    if (!this.spec.yRange) {
      if (!Number.isFinite(yLo)) { yLo = 0; yHi = 1; }
      const pad = (yHi - yLo) * 0.05 || Math.abs(yHi) * 0.1 || 1;
      yLo = yLo >= 0 && yLo - pad < 0 ? 0 : yLo - pad;
      yHi += pad;
    }
    const px = (x) => left + (x / xHi) * plotWidth;
    const py = (y) => bottom - ((y - yLo) / (yHi - yLo)) * plotHeight;

    // grid and axes
    ctx.font = `12px ${FONT}`;
    ctx.lineWidth = 1;
    ctx.strokeStyle = GRID;
    ctx.fillStyle = MUTED;
    const yt = ticks(yLo, yHi, Math.max(2, Math.floor(plotHeight / 30)));
    ctx.textAlign = 'right';
    for (const v of yt.values) {
      const y = Math.round(py(v)) + 0.5;
      ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(right, y); ctx.stroke();
      ctx.fillText(v.toFixed(decimals(yt.step)), left - 6, y);
    }
    const xt = ticks(0, xHi, Math.max(2, Math.floor(plotWidth / 60)), { integer: xHi >= 4 });
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    for (const v of xt.values) {
      const x = Math.round(px(v)) + 0.5;
      ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, bottom); ctx.stroke();
      ctx.fillText(v.toFixed(decimals(xt.step)), x, bottom + 4);
    }
    ctx.fillText('epoch', left + plotWidth / 2, bottom + 19);

    // the series, clipped to the plot
    ctx.save();
    ctx.beginPath(); ctx.rect(left, top - 1, plotWidth, plotHeight + 2); ctx.clip();
    let points = 0;
    drawn.forEach((d, i) => {
      if (!d) return;
      const s = this.spec.series[i];
      points += d.x.length;
      ctx.strokeStyle = s.stroke;
      ctx.lineWidth = s.width || 1.5;
      ctx.setLineDash(s.dash || []);
      ctx.beginPath();
      for (let k = 0; k < d.x.length; k++) {
        if (k) ctx.lineTo(px(d.x[k]), py(d.y[k])); else ctx.moveTo(px(d.x[k]), py(d.y[k]));
      }
      ctx.stroke();
      ctx.setLineDash([]);
      if (s.points && d.x.length <= plotWidth / 8) { // dots only where they are sparse enough to tell apart
        ctx.fillStyle = s.stroke;
        for (let k = 0; k < d.x.length; k++) {
          ctx.beginPath(); ctx.arc(px(d.x[k]), py(d.y[k]), 3, 0, 2 * Math.PI); ctx.fill();
        }
      }
    });
    ctx.restore();
    this.redraws += 1;
    return { points, ms: performance.now() - t1, waitMs: t1 - t0 };
  }
}
