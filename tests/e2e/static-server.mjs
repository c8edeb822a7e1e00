// A static file server on 127.0.0.1 for the end-to-end test: it counts requests per path
// (to prove what came from the network) and can stop and start again on the same port
// (the browser's caches are per origin, port included).

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
    this.server = null;
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
    response.writeHead(200, {
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      'content-length': size,
      'cache-control': 'no-cache',
    });
    if (request.method === 'HEAD') {
      response.end();
      return;
    }
    createReadStream(file).pipe(response);
  }
}
