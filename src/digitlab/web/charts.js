// Streaming charts (uPlot). Points are appended as events arrive; the canvas is redrawn at most
// once per animation frame, by whoever calls flush() from requestAnimationFrame. The container's
// data-points attribute says how many points the chart shows (for tests and tools).
import uPlot from './vendor/uPlot.esm.js';

export class LiveChart {
  /** series: [{label, stroke, points?}], e.g. batch loss (line) and val loss (epoch points). */
  constructor(container, { title, series, yRange }) {
    this.container = container;
    this.data = [[], ...series.map(() => [])];
    this.dirty = false;
    this.points = 0;
    container.dataset.points = '0';
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
    this.plot = new uPlot(opts, this.data, container);
    new ResizeObserver(() => {
      const w = Math.max(container.clientWidth, 280);
      if (w !== this.plot.width) this.plot.setSize({ width: w, height: 200 });
    }).observe(container);
  }

  /** Append one x with a value per series (null where a series has none). */
  push(x, values) {
    this.data[0].push(x);
    values.forEach((v, i) => this.data[i + 1].push(v));
    this.points++;
    this.dirty = true;
  }

  reset() {
    this.data = this.data.map(() => []);
    this.points = 0;
    this.dirty = true;
  }

  flush() {
    if (!this.dirty) return false;
    this.dirty = false;
    this.plot.setData(this.data);
    this.container.dataset.points = String(this.points);
    return true;
  }
}
