// The live charts' worker: each chart's OffscreenCanvas (transferred by charts.js) and every point
// of its series live here, so a redraw (thinning, drawing, and the canvas's paint and commit to
// the compositor) costs the page's main thread nothing. The page posts only what is new, at most
// ten times a second; messages that arrive together are drawn once. After each redraw the page
// is told {id, points, ms, waitMs, redraws} (its charts' data-* attributes).
import { ChartState } from './chart-draw.js';

const charts = new Map(); // id -> {state, canvas, ctx, dirty}
let scheduled = false;

self.onmessage = ({ data: m }) => {
  if (m.type === 'init') {
    charts.set(m.id, { state: new ChartState(m.spec, m.width, m.dpr), canvas: m.canvas, ctx: m.canvas.getContext('2d'), dirty: true });
  } else {
    const chart = charts.get(m.id);
    if (!chart) return;
    chart.state.apply(m);
    chart.dirty = true;
  }
  if (!scheduled) { scheduled = true; setTimeout(drawDirty, 0); }
};

function drawDirty() {
  scheduled = false;
  for (const [id, chart] of charts) {
    if (!chart.dirty) continue;
    chart.dirty = false;
    self.postMessage({ id, ...chart.state.draw(chart.canvas, chart.ctx), redraws: chart.state.redraws });
  }
}
