// Static file server for bench.mjs: serves directories (and single files) from 127.0.0.1
// on a random free port, with correct MIME types and Content-Length, and counts the bytes
// it sends so the benchmark can report what a page load transferred.

import http from 'node:http';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';

const MIME = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.json': 'application/json', '.webmanifest': 'application/manifest+json',
  '.wasm': 'application/wasm', '.gguf': 'application/octet-stream', '.bin': 'application/octet-stream',
  '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon', '.txt': 'text/plain; charset=utf-8',
};

// Bytes and requests served since the last reset, per path too (to see what a load fetched).
export class Traffic {
  constructor() { this.reset(); }
  reset() { this.bytes = 0; this.requests = 0; this.notModified = 0; this.paths = {}; }
  add(urlPath, bytes, status) {
    this.bytes += bytes;
    this.requests += 1;
    if (status === 304) this.notModified += 1;
    this.paths[urlPath] = (this.paths[urlPath] ?? 0) + bytes;
  }
  snapshot() {
    return { bytes: this.bytes, requests: this.requests, not_modified: this.notModified, paths: { ...this.paths } };
  }
}

// Maps a URL path to a file: `mounts` is a list of [urlPrefix, directory-or-file]; the
// first prefix that matches wins. Paths that climb out of their directory are refused.
function resolveFile(mounts, urlPath) {
  for (const [prefix, target] of mounts) {
    if (urlPath === prefix && !prefix.endsWith('/')) return target; // a single-file mount
    if (!prefix.endsWith('/') || !urlPath.startsWith(prefix)) continue;
    let rel = urlPath.slice(prefix.length);
    if (rel === '' || rel.endsWith('/')) rel += 'index.html';
    const file = path.resolve(target, rel);
    if (file.startsWith(path.resolve(target) + path.sep)) return file;
  }
  return null;
}

// A static server with an ETag and "Cache-Control: no-cache" (revalidate every time), so a
// reload costs 304s for unchanged files, like a static host with validators; no Range.
export function startServer(mounts) {
  const traffic = new Traffic();
  const server = http.createServer(async (req, res) => {
    let urlPath;
    try { urlPath = decodeURIComponent(new URL(req.url, 'http://x').pathname); } catch { urlPath = null; }
    const send = (status, headers, body) => {
      const bytes = req.method === 'HEAD' || !body ? 0 : body.length ?? 0;
      res.writeHead(status, headers);
      res.end(req.method === 'HEAD' ? undefined : body);
      traffic.add(urlPath, bytes, status);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, { 'Content-Length': 0 });
    const file = urlPath && resolveFile(mounts, urlPath);
    let stat = null;
    try { stat = file && (await fsp.stat(file)); } catch { /* not found below */ }
    if (!stat?.isFile()) return send(404, { 'Content-Type': 'text/plain', 'Content-Length': 9 }, Buffer.from('not found'));
    const etag = `"${stat.size.toString(16)}-${Math.floor(stat.mtimeMs).toString(16)}"`;
    const headers = { ETag: etag, 'Cache-Control': 'no-cache' };
    if (req.headers['if-none-match'] === etag) return send(304, headers);
    headers['Content-Type'] = MIME[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
    headers['Content-Length'] = stat.size;
    if (req.method === 'HEAD') return send(200, headers);
    res.writeHead(200, headers);
    const stream = fs.createReadStream(file);
    stream.pipe(res);
    // Count what actually went out (a cancelled download counts what was sent).
    res.on('close', () => traffic.add(urlPath, stream.bytesRead, 200));
  });
  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const origin = `http://127.0.0.1:${server.address().port}`;
      resolve({ origin, traffic, close: () => new Promise((done) => { server.closeAllConnections(); server.close(done); }) });
    });
  });
}
