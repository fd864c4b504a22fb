// The page's main thread only draws and listens. Each card is a module (train, draw, data,
// models, evaluation); they share state and news through store.js. This file wires them,
// owns the one requestAnimationFrame loop that paints them all, and says when the page is
// ready: <body data-ready="true"> once its data is loaded and the recognizer has started.
import { api } from './api.js';
import { createDataCard } from './data.js';
import { createDrawCard } from './drawcard.js';
import { createDrawingsPanel } from './drawings.js';
import { createEvaluationCard } from './evaluation.js';
import { createModelsCard } from './models.js';
import { createRunsCard } from './runs.js';
import { stackTables } from './tables.js';
import { createTrainCard } from './train.js';

// ---- one frame loop for everything that paints ------------------------------------------------
let frameQueued = false;
const painters = [];

/** Ask for one paint at the next animation frame; any number of calls before it cost one frame. */
function requestFrame() {
  if (!frameQueued) { frameQueued = true; requestAnimationFrame(frame); }
}

function frame() {
  frameQueued = false;
  for (const paint of painters) paint();
}

const train = createTrainCard({ requestFrame });
const draw = createDrawCard({ requestFrame });
const data = createDataCard();
const drawings = createDrawingsPanel(document.getElementById('my-drawings')); // in the Data card
const models = createModelsCard();
const runs = createRunsCard();
stackTables();
createEvaluationCard();
painters.push(train.frame, draw.frame);

// ---- the connection pill -----------------------------------------------------------------------
async function health() {
  const pill = document.getElementById('connection');
  try {
    const h = await api('/api/health');
    pill.textContent = `connected · v${h.version}`;
    pill.className = 'pill ok';
  } catch {
    pill.textContent = 'server unreachable';
    pill.className = 'pill bad';
  }
}

async function start() {
  await health();
  setInterval(health, 5000);
  await data.start(); // the datasets, before the Train form that lists them
  await models.start(); // picks the model in use, if any
  await drawings.start(); // the taught drawings
  await train.start(); // the form's limits, and the run in progress, replayed
  await runs.start(); // the history's first page
  await draw.ready();
  document.body.dataset.ready = 'true';
}
start();
