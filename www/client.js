// The page's side of the worker protocol: one module worker, query ids (a message about an
// older query is stale and dropped), and a restart when the worker script itself failed.
// Every message is built by protocol.js, generated from web/src/protocol.rs.

import * as protocol from './protocol.js';

export class WorkerClient {
  // `handlers` maps each worker → page message type to a function; `onCrash(message)` hears
  // of a worker that failed to start or died.
  constructor(handlers, onCrash) {
    this.handlers = handlers;
    this.onCrash = onCrash;
    this.currentId = 0; // the query in flight (or the last one); older ids are stale
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

  receive(message) {
    if (message.id != null && message.id !== this.currentId) return;
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

  // Starts a `task` query with `fields` (the rest take the engine's defaults); returns its id.
  query(task, fields) {
    this.currentId += 1;
    this.worker.postMessage(protocol.query({ ...fields, id: this.currentId, task }));
    return this.currentId;
  }

  cancel() {
    this.worker.postMessage(protocol.cancel({ id: this.currentId }));
  }
}
