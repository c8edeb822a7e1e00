// The page's side of the worker protocol: one module worker, job ids, and a restart when
// the worker script itself failed. Each task keeps its own latest id: a message about an
// older job of the same task is stale and dropped, while a tagline streaming and the
// Recommend tab re-ranking do not make each other's messages stale.
// Every message is built by protocol.js, generated from web/src/protocol.rs.

import * as protocol from './protocol.js';

export class WorkerClient {
  // `handlers` maps each worker → page message type to a function; `onCrash(message)` hears
  // of a worker that failed to start or died.
  constructor(handlers, onCrash) {
    this.handlers = handlers;
    this.onCrash = onCrash;
    this.lastId = 0;
    this.current = {}; // task -> the id of its latest job; older ones are stale
    this.generating = null; // the id of the job whose text is being written, if any
    this.broken = false;
    this.worker = this.create();
  }

  create() {
    const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
    worker.addEventListener('message', (event) => this.receive(event.data || {}));
    worker.addEventListener('error', (event) => {
      console.error('worker error', event);
      this.broken = true;
      this.onCrash(event.message || 'could not start');
    });
    return worker;
  }

  // Whether a message with an id belongs to the latest job of its task (an error names no
  // task: it counts if it is any task's latest).
  isCurrent(message) {
    if (message.id == null) return true;
    if (message.task) return this.current[message.task] === message.id;
    return Object.values(this.current).includes(message.id);
  }

  receive(message) {
    // Even a stale job's end means nothing is being written any more.
    const ended = message.type === 'done' || message.type === 'error'
      || (message.type === 'answered' && !message.answering); // "I don't know.": nothing to write
    if (ended && message.id === this.generating) this.generating = null;
    if (!this.isCurrent(message)) return;
    const handler = this.handlers[message.type];
    if (handler) handler(message);
    else console.warn('unknown worker message', message.type);
  }

  load() {
    if (this.broken) {
      // A plain `load` cannot help a worker whose script failed: start a new one.
      this.worker.terminate();
      this.worker = this.create();
      this.broken = false;
    }
    this.worker.postMessage(protocol.load());
  }

  nextId(task) {
    this.lastId += 1;
    this.current[task] = this.lastId;
    return this.lastId;
  }

  // Starts a `task` query with `fields` (the rest take the engine's defaults); returns its id.
  query(task, fields) {
    const id = this.nextId(task);
    this.generating = id;
    this.worker.postMessage(protocol.query({ ...fields, id, task }));
    return id;
  }

  // Fetches the recommender's part (the Recommend tab's first opening); its errors carry
  // the returned id (kept as `current.load_recs`).
  loadRecs() {
    const id = this.nextId('load_recs');
    this.worker.postMessage(protocol.load_recs({ id }));
    return id;
  }

  // Ranks for `fields.ratings`; with `fields.note`, the note is written too. Returns its id.
  recommend(fields) {
    const id = this.nextId(protocol.TASKS.recommend);
    if (fields.note) this.generating = id;
    this.worker.postMessage(protocol.recommend({ ...fields, id }));
    return id;
  }

  // Fetches the Ask tab's passage parts (its first opening); its errors carry the returned
  // id (kept as `current.load_ask`).
  loadAsk() {
    const id = this.nextId('load_ask');
    this.worker.postMessage(protocol.load_ask({ id }));
    return id;
  }

  // Asks `fields.question` (the other fields take the engine's defaults); returns its id.
  ask(fields) {
    const id = this.nextId(protocol.TASKS.ask);
    this.generating = id;
    this.worker.postMessage(protocol.ask({ ...fields, id }));
    return id;
  }

  // Stops the text being written, whichever task writes it.
  cancel() {
    if (this.generating !== null) this.worker.postMessage(protocol.cancel({ id: this.generating }));
  }
}
