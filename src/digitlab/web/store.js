// What the cards share: one state object and a tiny publish/subscribe, so that a card reacts to
// another's news ("active model changed", "run ended") without importing it.
//
// topics and their detail:
//   datasets     -                                  the dataset list is loaded (state.datasets)
//   dataset      -                                  the Train form picked another dataset (state.dataset)
//   models       -                                  the model list changed (state.models)
//   active       {name, version, changed, evaluate} the model in use changed or was re-saved
//   model-saved  {model, version}                   a run saved an epoch of `model`
//   run-started  {run}                              the Train card follows a run (started, or found training)
//   run-ended    {model, run}                       a run finished, failed or was cancelled
//   run-deleted  {run}                              the Runs card deleted a run's record
//   status       {text, kind}                       a line for the Train card's status ('good', 'warn', 'bad')
//   follow-run   {run}                              another card started run `run`: the Train card shows it
//   drawings     {added?}                           a drawing was taught (drawcard.js) or deleted

/** Read by every card; each field has one writer (named on its right). */
export const state = {
  datasets: [], // data.js
  dataset: null, // train.js: the name picked in the Train form
  models: [], // models.js: saved models, damaged ones included
  active: null, // models.js: the name of the model used for drawing and evaluation
  running: false, // train.js
};

const subscribers = new Map();

/** Call `fn(detail)` on every `notify(topic)`; returns the function that unsubscribes. */
export function subscribe(topic, fn) {
  if (!subscribers.has(topic)) subscribers.set(topic, new Set());
  subscribers.get(topic).add(fn);
  return () => subscribers.get(topic).delete(fn);
}

/** Tell every subscriber of `topic`, in subscription order; one that throws does not stop the others. */
export function notify(topic, detail = {}) {
  for (const fn of [...(subscribers.get(topic) || [])]) {
    try {
      fn(detail);
    } catch (err) {
      reportError(err); // an uncaught error, as if thrown in its own task: never silence
    }
  }
}
