// Charts whose cost per redraw stays small and constant however long the run.
//
// LiveChart streams (the Train card's loss and accuracy): push() only appends to arrays; flush()
// sends the points that are new since the last flush to the chart worker (chart-worker.js), which
// holds every point, draws on the chart's OffscreenCanvas and commits it to the compositor: the
// drawing, its paint and its commit never run on the page's main thread (where OffscreenCanvas is
// missing, the same ChartState draws here). The caller decides how often to flush: train.js at
// most ten times a second. OverlayChart (uPlot) shows finished curves of several runs at once
// (the Runs card), redrawn when the selection changes. Either way a long series is decimated to its
// lowest and highest point per pixel column, so a redraw costs the same at epoch 1 and epoch 2,000.
// Charts follow their container's width (ResizeObserver).
//
// Each chart has a text alternative: the plot is an image whose name summarises it, and a
// "table" disclosure under it lists the numbers (built only while open). Its legend is made of
// buttons (keyboard: Tab, Enter) that show and hide a series. The container says what it holds,
// for tests and tools: data-points (points drawn), data-length (points held), data-redraws
// (redraws so far) and data-draw-ms (how long the last redraw took; for a live chart, its drawing,
// and data-wait-ms how long its canvas first waited for the compositor).
import uPlot from './vendor/uPlot.esm.js';
import { ChartState, HEIGHT as LIVE_HEIGHT, decimate } from './chart-draw.js';
const HEIGHT = 200;
const MIN_WIDTH = 160;
const fmt = (v, digits = 4) => (v == null || !Number.isFinite(v) ? '–' : v.toFixed(digits));

/** What LiveChart and OverlayChart share: the plot's size, timing, legend and text alternative. */
class Chart {
  constructor(container, { title, yRange, digits = 4 }) {
    this.container = container;
    this.title = title;
    this.yRange = yRange;
    this.digits = digits;
    this.redraws = 0;
    this.shown = -1;
    this.plot = null;
    this.legend = document.createElement('div');
    this.legend.className = 'chart-legend';
    this.table = document.createElement('details');
    this.table.className = 'chart-data';
    const summary = document.createElement('summary');
    summary.textContent = `${title}: the numbers`;
    this.table.append(summary);
    this.table.addEventListener('toggle', () => this.renderTable());
    container.append(this.legend, this.table);
    new ResizeObserver(() => this.resize()).observe(container);
  }

  width() { return Math.max(Math.floor(this.container.clientWidth) || 300, MIN_WIDTH); }

  /** The container's width changed (maybe): uPlot is resized to it and redrawn. */
  resize() {
    if (!this.plot) return;
    const w = this.width();
    if (w === this.plot.width) return;
    this.plot.setSize({ width: w, height: HEIGHT });
    this.resized();
  }

  /** The plot's pixel columns: what decimation aims at. */
  columns() {
    return Math.max(1, Math.round(this.plot.bbox.width / (window.devicePixelRatio || 1)) || this.plot.width);
  }

  /** A new uPlot for `series` (uPlot's own legend hidden: ours is made of buttons). */
  build(series) {
    if (this.plot) this.plot.destroy();
    let drawStart = 0;
    this.plot = new uPlot({
      title: this.title,
      width: this.width(),
      height: HEIGHT,
      scales: { x: { time: false }, y: this.yRange ? { range: this.yRange } : {} },
      axes: [{ label: 'epoch', size: 36 }, { size: 48 }],
      legend: { show: false },
      hooks: {
        drawClear: [() => { drawStart = performance.now(); }],
        draw: [() => { this.container.dataset.drawMs = (performance.now() - drawStart).toFixed(2); }],
      },
      series: [
        { label: 'epoch' },
        ...series.map((s) => ({
          label: s.label,
          stroke: s.stroke,
          width: s.width ?? 1.5,
          dash: s.dash,
          spanGaps: true,
          // dots only where they are sparse enough to tell apart
          points: s.points ? { show: (u, i) => sparse(u, i), size: 6, fill: s.stroke, stroke: s.stroke } : { show: false },
        })),
      ],
    }, [[], ...series.map(() => [])], this.container);
    this.container.insertBefore(this.plot.root, this.legend);
    this.root = this.plot.root;
    this.root.setAttribute('role', 'img');
    this.root.setAttribute('aria-label', `${this.title}: no data yet`);
  }

  /** Legend buttons, one per series: pressed = shown. */
  buildLegend(entries) {
    this.legend.replaceChildren(...entries.map(({ label, stroke, dash }, i) => {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'legend-item';
      button.setAttribute('aria-pressed', 'true');
      const swatch = document.createElement('span');
      swatch.className = dash ? 'swatch dashed' : 'swatch';
      swatch.style.borderColor = stroke;
      button.append(swatch, label);
      button.addEventListener('click', () => {
        const show = button.getAttribute('aria-pressed') !== 'true';
        button.setAttribute('aria-pressed', String(show));
        this.setShown(i, show);
      });
      return button;
    }));
  }

  setShown(i, show) { this.plot.setSeries(i + 1, { show }); }

  /** uPlot's data: decimated, aligned on one x. Returns the points drawn. */
  setData(series) {
    const columns = this.columns();
    const data = aligned(series.map((s) => decimate(s.x, s.y, columns)));
    this.plot.setData(data);
    this.redraws++;
    this.describe(data[0].length);
    return data[0].length;
  }

  /** The data-* attributes, written only when they change. */
  describe(shown) {
    const d = this.container.dataset;
    if (shown !== this.shown) { d.points = String(shown); this.shown = shown; }
    d.length = String(this.length || 0);
    d.redraws = String(this.redraws);
  }

  label(text) {
    if (this.root && this.root.getAttribute('aria-label') !== text) this.root.setAttribute('aria-label', text);
  }

  /** The disclosure's table: rows of cells, built only while it is open. */
  renderTable() {
    if (!this.table.open) return;
    const { head, rows } = this.tableRows();
    const table = document.createElement('table');
    table.className = 'table';
    const tr = (cells, tag) => {
      const row = document.createElement('tr');
      cells.forEach((c, i) => {
        const cell = document.createElement(tag);
        cell.textContent = c;
        if (i > 0) cell.className = 'num';
        row.append(cell);
      });
      return row;
    };
    table.append(tr(head, 'th'), ...(rows.length ? rows.map((r) => tr(r, 'td')) : [tr(['no data yet'], 'td')]));
    const old = this.table.querySelector('table');
    if (old) old.replaceWith(table); else this.table.append(table);
  }
}

/** uPlot's points.show: dots only when the series has fewer than one point per 8 px. */
function sparse(u, i) {
  const n = u.data[i].reduce((k, v) => (v == null ? k : k + 1), 0);
  return n > 0 && n <= u.bbox.width / (8 * (window.devicePixelRatio || 1));
}

/** The chart worker, shared by every live chart; null where OffscreenCanvas cannot be used. */
let chartWorker;
const surfaces = new Map(); // chart id -> the LiveChart told about its redraws
function worker() {
  if (chartWorker !== undefined) return chartWorker;
  chartWorker = null;
  if (typeof OffscreenCanvas === 'undefined' || !HTMLCanvasElement.prototype.transferControlToOffscreen) return null;
  try {
    chartWorker = new Worker(new URL('./chart-worker.js', import.meta.url), { type: 'module' });
    chartWorker.onmessage = ({ data }) => { const chart = surfaces.get(data.id); if (chart) chart.drawn(data); };
    // the worker could not start (no module workers, a failed load): its charts are drawn here instead
    chartWorker.onerror = () => {
      chartWorker.terminate();
      for (const chart of surfaces.values()) chart.drawHere();
      surfaces.clear();
    };
  } catch {
    chartWorker = null;
  }
  return chartWorker;
}
let nextId = 0;
const liveCharts = new Set();
/** Tell every live chart when the device pixel ratio changes (ResizeObserver does not). */
function watchPixelRatio() {
  const query = window.matchMedia(`(resolution: ${window.devicePixelRatio || 1}dppx)`);
  query.addEventListener('change', () => {
    for (const chart of liveCharts) chart.resize();
    watchPixelRatio();
  }, { once: true });
}

export class LiveChart extends Chart {
  /** series: [{label, stroke, points?}], e.g. batch loss (line) and val loss (per epoch, points). */
  constructor(container, { title, series, yRange }) {
    super(container, { title, yRange });
    this.spec = series;
    this.kinds = series.map((s) => (s.points ? 'points' : 'line'));
    this.series = series.map(() => ({ x: [], y: [] }));
    this.sent = series.map(() => 0); // points of each series the drawing side has
    this.length = 0;
    this.dirty = false;
    this.id = nextId++;
    this.spec2d = { title, yRange, series: series.map(({ label, stroke, points }) => ({ label, stroke, points })) };
    this.drawnWidth = this.width();
    this.drawnDpr = window.devicePixelRatio || 1;
    if (!liveCharts.size) watchPixelRatio();
    liveCharts.add(this);
    this.root = this.newCanvas();
    container.insertBefore(this.root, this.legend);
    const w = worker();
    if (w) {
      const offscreen = this.root.transferControlToOffscreen();
      surfaces.set(this.id, this);
      w.postMessage({ type: 'init', id: this.id, canvas: offscreen, spec: this.spec2d, width: this.drawnWidth,
        dpr: window.devicePixelRatio || 1 }, [offscreen]);
      this.post = (m) => w.postMessage({ ...m, id: this.id });
    } else {
      this.drawHere();
    }
    this.buildLegend(series);
    this.describe(0);
  }

  newCanvas() {
    const canvas = document.createElement('canvas');
    canvas.className = 'live-plot';
    canvas.setAttribute('role', 'img');
    canvas.setAttribute('aria-label', this.root ? this.root.getAttribute('aria-label') : `${this.title}: no data yet`);
    canvas.style.width = `${this.drawnWidth}px`;
    canvas.style.height = `${LIVE_HEIGHT}px`;
    return canvas;
  }

  /**
   * Draw on the page, by the same code, in its next frame: where OffscreenCanvas is missing, or
   * after the chart worker failed (then on a new canvas, the old one belongs to the worker).
   */
  drawHere() {
    if (this.post) { // it was the worker's: a new canvas, given everything held so far
      const canvas = this.newCanvas();
      this.root.replaceWith(canvas);
      this.root = canvas;
    }
    const state = new ChartState(this.spec2d, this.drawnWidth, window.devicePixelRatio || 1);
    const canvas = this.root;
    const ctx = canvas.getContext('2d');
    let queued = false;
    this.post = (m) => {
      state.apply(m);
      if (queued) return;
      queued = true;
      requestAnimationFrame(() => { queued = false; this.drawn({ ...state.draw(canvas, ctx), redraws: state.redraws }); });
    };
    this.series.forEach((s, i) => { if (s.x.length) this.post({ type: 'load', series: i, x: s.x.slice(), y: s.y.slice() }); });
    this.sent = this.series.map((s) => s.x.length);
    [...this.legend.querySelectorAll('button')].forEach((b, i) => {
      if (b.getAttribute('aria-pressed') === 'false') this.post({ type: 'show', series: i, show: false });
    });
    this.post({ type: 'size', width: this.drawnWidth, dpr: window.devicePixelRatio || 1 });
  }

  /** The drawing side's news after a redraw: written to the container's data-* attributes. */
  drawn({ points, ms, waitMs, redraws }) {
    this.redraws = redraws;
    this.container.dataset.drawMs = ms.toFixed(2);
    this.container.dataset.waitMs = waitMs.toFixed(2);
    this.describe(points);
  }

  /** A new width, or a new device pixel ratio (the window moved to another screen, a zoom). */
  resize() {
    const width = this.width(), dpr = window.devicePixelRatio || 1;
    if (width === this.drawnWidth && dpr === this.drawnDpr) return;
    this.drawnWidth = width;
    this.drawnDpr = dpr;
    this.root.style.width = `${width}px`;
    this.post({ type: 'size', width, dpr });
  }

  setShown(i, show) { this.post({ type: 'show', series: i, show }); }

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

  /** Replace series `i` with (xs, ys) at once: a finished run's curves from the history. */
  load(i, xs, ys) {
    this.length += xs.length - this.series[i].x.length;
    this.series[i] = { x: xs.slice(), y: ys.slice() };
    this.post({ type: 'load', series: i, x: xs.slice(), y: ys.slice() });
    this.sent[i] = xs.length;
    this.dirty = true;
  }

  reset() {
    this.series = this.series.map(() => ({ x: [], y: [] }));
    this.sent = this.series.map(() => 0);
    this.length = 0;
    this.post({ type: 'reset' });
    this.dirty = true;
  }

  /** Send the points that are new since the last flush to be drawn, if any; returns whether there were. */
  flush() {
    if (!this.dirty) return false;
    this.dirty = false;
    const points = [];
    this.series.forEach((s, i) => {
      if (s.x.length > this.sent[i]) points.push([i, s.x.slice(this.sent[i]), s.y.slice(this.sent[i])]);
      this.sent[i] = s.x.length;
    });
    if (points.length) this.post({ type: 'append', points });
    this.describe(this.shown < 0 ? 0 : this.shown);
    this.label(this.summary());
    // the table has a row per finished epoch: rebuilt when one ends, not at every batch
    const epochs = this.series.reduce((n, s, i) => (this.kinds[i] === 'points' ? n + s.x.length : n), 0);
    if (epochs !== this.tableEpochs) { this.tableEpochs = epochs; this.renderTable(); }
    return true;
  }

  /** "Loss: 20 epochs. batch loss from 2.3012 to 0.0613; val loss 0.0524 after epoch 20 (lowest 0.0519)." */
  summary() {
    const epochs = this.series.find((s, i) => this.kinds[i] === 'points' && s.x.length);
    const parts = this.series.map((s, i) => {
      if (!s.y.length) return null;
      const name = this.spec[i].label;
      if (this.kinds[i] === 'line') return `${name} from ${fmt(s.y[0])} to ${fmt(s.y[s.y.length - 1])}`;
      const best = this.yRange ? Math.max(...s.y) : Math.min(...s.y);
      return `${name} ${fmt(s.y[s.y.length - 1])} after epoch ${s.x[s.x.length - 1]} (${this.yRange ? 'best' : 'lowest'} ${fmt(best)})`;
    }).filter(Boolean);
    if (!parts.length) return `${this.title}: no data yet`;
    return `${this.title}: ${epochs ? `${epochs.x.length} epochs` : 'first epoch'}. ${parts.join('; ')}.`;
  }

  /** Per epoch: each line series' last value up to that epoch, and each point series' value at it. */
  tableRows() {
    const epochs = this.series.find((s, i) => this.kinds[i] === 'points' && s.x.length) || { x: [] };
    const head = ['epoch', ...this.spec.map((s, i) => (this.kinds[i] === 'line' ? `${s.label} (end of epoch)` : s.label))];
    const at = this.series.map(() => 0);
    const rows = epochs.x.map((epoch) => [String(epoch), ...this.series.map((s, i) => {
      if (this.kinds[i] === 'points') {
        const k = s.x.indexOf(epoch);
        return k < 0 ? '–' : fmt(s.y[k]);
      }
      while (at[i] < s.x.length && s.x[at[i]] <= epoch + 1e-9) at[i]++;
      return at[i] ? fmt(s.y[at[i] - 1]) : '–';
    })]);
    return { head, rows };
  }
}

/**
 * Several runs' curves over each other: per run a thin line (batch) and a thicker dotted-when-
 * sparse line (validation, per epoch), in the run's colour.
 */
export class OverlayChart extends Chart {
  constructor(container, { title, yRange, batchLabel, valLabel, better }) {
    super(container, { title, yRange });
    this.batchLabel = batchLabel;
    this.valLabel = valLabel;
    this.better = better; // 'max' or 'min': what "best" means in the table
    this.runs = [];
    this.key = '';
    this.length = 0;
  }

  resized() { if (this.runs.length) this.draw(); }

  /** runs: [{id, label, color, batch: {x, y}, val: {x, y}}]; a new set of runs rebuilds the plot. */
  show(runs) {
    this.runs = runs;
    const key = runs.map((r) => `${r.id}:${r.color}`).join(',');
    if (key !== this.key || !this.plot) {
      this.key = key;
      this.build(runs.flatMap((r) => [
        { label: `${r.label} ${this.batchLabel}`, stroke: r.color, width: 1 },
        { label: `${r.label} ${this.valLabel}`, stroke: r.color, width: 2.5, points: true, dash: [6, 3] },
      ]));
    }
    this.length = runs.reduce((n, r) => n + r.batch.x.length + r.val.x.length, 0);
    this.draw();
  }

  draw() {
    this.setData(this.runs.flatMap((r) => [r.batch, r.val]));
    this.label(this.summary());
    this.renderTable();
  }

  summary() {
    if (!this.runs.length) return `${this.title}: no run selected`;
    return `${this.title} of ${this.runs.length} run${this.runs.length > 1 ? 's' : ''}: ${this.runs.map((r) => {
      const v = r.val.y;
      return `${r.label}, ${v.length ? `${this.valLabel} ${fmt(v[v.length - 1])} after epoch ${r.val.x[r.val.x.length - 1]}` : 'no epoch yet'}`;
    }).join('; ')}.`;
  }

  tableRows() {
    const pick = this.better === 'max' ? Math.max : Math.min;
    return {
      head: ['run', 'epochs', 'last batch', 'final val', 'best val'],
      rows: this.runs.map((r) => [r.label, String(r.val.x.length ? r.val.x[r.val.x.length - 1] : 0),
        fmt(r.batch.y[r.batch.y.length - 1]), fmt(r.val.y[r.val.y.length - 1]),
        r.val.y.length ? fmt(pick(...r.val.y)) : '–']),
    };
  }
}

/**
 * uPlot's data: one ascending x array without repeats, and per series a y array with null where it
 * has no point. Series that share an x share its row: a repeated x would hide the last points from
 * uPlot's auto-ranging (it finds the first row of the scale's end).
 */
function aligned(series) {
  const total = series.reduce((n, s) => n + s.x.length, 0);
  const x = [];
  const ys = series.map(() => []);
  const at = series.map(() => 0);
  for (let k = 0; k < total;) { // a k-way merge by x
    let next = Infinity;
    for (let s = 0; s < series.length; s++) if (at[s] < series[s].x.length && series[s].x[at[s]] < next) next = series[s].x[at[s]];
    x.push(next);
    for (let s = 0; s < series.length; s++) {
      if (at[s] < series[s].x.length && series[s].x[at[s]] === next) { ys[s].push(series[s].y[at[s]]); at[s]++; k++; } else ys[s].push(null);
    }
  }
  return [x, ...ys];
}
