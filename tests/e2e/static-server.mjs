// A static file server on 127.0.0.1 for the end-to-end tests: it counts requests per path
// (to prove what came from the network), can stop and start again on the same port (the
// browser's caches are per origin, port included), serves byte ranges (resumed downloads),
// can switch to another site folder (a new deploy), and can misbehave on a path: cut the
// connection part-way through a file, or answer 404 or an HTML page instead of it.

import { createServer } from 'node:http';
import { createReadStream, statSync } from 'node:fs';
import { extname, join, normalize } from 'node:path';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.webmanifest': 'application/manifest+json',
  '.wasm': 'application/wasm',
  '.gguf': 'application/octet-stream',
  '.bin': 'application/octet-stream',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

export class StaticServer {
  constructor(root) {
    this.root = root;
    this.port = 0;
    this.requests = new Map();
    this.ranges = [];      // [path, first byte] of every Range request
    this.faults = new Map(); // path -> { kind: 'cut' | '404' | 'html', afterBytes, times }
    this.server = null;
  }

  // Makes `path` misbehave: `cut` sends `afterBytes` bytes then drops the connection, `404`
  // and `html` answer instead of the file; `times` requests are affected (Infinity: all).
  fault(path, kind, { afterBytes = 0, times = Infinity } = {}) {
    this.faults.set(path, { kind, afterBytes, times });
  }

  get url() {
    return `http://127.0.0.1:${this.port}/`;
  }

  async start() {
    this.server = createServer((request, response) => this.handle(request, response));
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.port, '127.0.0.1', resolve);
    });
    this.port = this.server.address().port;
  }

  async stop() {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
    this.server = null;
  }

  handle(request, response) {
    const path = decodeURIComponent(new URL(request.url, 'http://x').pathname);
    this.requests.set(path, (this.requests.get(path) ?? 0) + 1);
    const file = normalize(join(this.root, path.endsWith('/') ? `${path}index.html` : path));
    if (!file.startsWith(this.root)) {
      response.writeHead(403).end();
      return;
    }
    let size;
    try {
      size = statSync(file).size;
    } catch {
      response.writeHead(404).end('not found');
      return;
    }
    const known = this.faults.get(path);
    const fault = known && known.times > 0 ? known : null;
    if (fault) {
      fault.times -= 1;
      if (fault.kind === '404') {
        response.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
        return;
      }
      if (fault.kind === 'html') {
        response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
          .end('<!doctype html><title>Oops</title><p>This site is being updated.</p>');
        return;
      }
    }
    const range = /^bytes=(\d+)-$/.exec(request.headers.range ?? '');
    const start = range ? Number(range[1]) : 0;
    if (range) this.ranges.push([path, start]);
    if (start >= size && size > 0) {
      response.writeHead(416, { 'content-range': `bytes */${size}` }).end();
      return;
    }
    response.writeHead(range ? 206 : 200, {
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      'content-length': size - start,
      'cache-control': 'no-cache',
      'accept-ranges': 'bytes',
      ...(range ? { 'content-range': `bytes ${start}-${size - 1}/${size}` } : {}),
    });
    if (request.method === 'HEAD') {
      response.end();
      return;
    }
    const stream = createReadStream(file, { start });
    if (fault?.kind === 'cut') {
      // Send `afterBytes`, then drop the connection mid-file.
      let sent = 0;
      stream.on('data', (chunk) => {
        if (sent + chunk.length >= fault.afterBytes) {
          stream.destroy();
          // Once the bytes so far are flushed, close the socket: the body ends short of its
          // content-length, as when a connection drops.
          const rest = chunk.subarray(0, Math.max(0, fault.afterBytes - sent));
          response.write(rest, () => response.socket?.destroy());
          return;
        }
        sent += chunk.length;
        response.write(chunk);
      });
      stream.on('end', () => response.end());
      return;
    }
    stream.pipe(response);
  }
}
