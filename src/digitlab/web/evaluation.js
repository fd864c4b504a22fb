// The Evaluation card: the model in use on its dataset's test split: the confusion matrix,
// per-class accuracy and the misclassified images. Loaded when a model is picked or a run ends.
import { api, decodePixels, drawDigit, el, pct } from './api.js';
import { state, subscribe } from './store.js';

const $ = (id) => document.getElementById(id);

export function createEvaluationCard() {
  subscribe('active', ({ name, evaluate }) => { if (name && evaluate) load(name); });
  return {};
}

async function load(name) {
  $('eval-model').textContent = `· ${name} (loading…)`;
  let report;
  try {
    report = await api(`/api/models/${encodeURIComponent(name)}/evaluation`);
  } catch (err) {
    $('eval-model').textContent = `· ${name}: ${err.message}`;
    return;
  }
  if (state.active !== name) return; // another model was picked meanwhile
  $('eval-model').textContent = `· ${name} on ${report.dataset} test: ${pct(report.accuracy, 2)} of ${report.count.toLocaleString()}`;
  const max = Math.max(...report.confusion.flatMap((row, i) => row.filter((_, j) => j !== i)), 1);
  const label = (i) => report.classes[i];
  const head = el('tr', {}, el('th', { title: 'rows: true class, columns: predicted' }, 't\\p'),
    ...report.confusion.map((_, j) => el('th', { title: label(j) }, String(j))));
  const rows = report.confusion.map((row, i) => el('tr', {}, el('th', { title: label(i) }, String(i)), ...row.map((v, j) => {
    const cell = el('td', { title: `true ${label(i)}, predicted ${label(j)}: ${v}` }, String(v));
    if (i === j) cell.style.background = `rgba(26,154,90,${0.15 + 0.5 * report.per_class_accuracy[i]})`;
    else if (v) cell.style.background = `rgba(210,65,47,${0.1 + 0.7 * v / max})`;
    return cell;
  })));
  $('confusion').replaceChildren(head, ...rows);
  $('per-class').replaceChildren(...report.per_class_accuracy.map((a, i) => {
    const fill = el('div', { class: 'fill' });
    fill.style.width = `${(100 * a).toFixed(1)}%`;
    return el('div', { class: 'bar' }, el('span', {}, label(i)), el('div', { class: 'track' }, fill), el('span', {}, pct(a)));
  }));
  $('misclassified').replaceChildren(...(report.misclassified.length ? report.misclassified.map((m) => el('div', { class: 'example' },
    drawDigit(el('canvas'), decodePixels(m.pixels)),
    el('span', { title: 'true class' }, label(m.label)),
    el('span', { class: 'wrong', title: 'what the model said' }, `said ${label(m.predicted)}`)))
    : [el('p', { class: 'muted' }, 'None: every test image is right.')]));
}
