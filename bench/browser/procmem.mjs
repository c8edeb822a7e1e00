// Memory of the Chromium processes bench.mjs started, read from /proc (Linux only): a
// sampler that keeps the peak of RSS and PSS sums while a benchmark phase runs.

import fs from 'node:fs';

const MEMORY_SAMPLE_MS = 250;

// The processes that this node process started, directly or not (Chromium's browser,
// zygotes, GPU, utility and renderer processes), from /proc's parent links.
function descendantPids(root) {
  const children = new Map();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(name));
    } catch { /* the process exited meanwhile */ }
  }
  const found = [];
  const queue = [root];
  while (queue.length) {
    for (const pid of children.get(queue.shift()) ?? []) { found.push(pid); queue.push(pid); }
  }
  return found;
}

function readKb(file, field) {
  const match = fs.readFileSync(file, 'utf8').match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
  return match ? Number(match[1]) * 1024 : 0;
}

// One reading: RSS summed over renderer processes (the page and its worker live there) and
// over every Chromium process; PSS (shared pages split between processes) over all, since
// summing RSS counts shared libraries once per process.
export function memorySample() {
  const sample = { renderer_rss: 0, browser_ui_rss: 0, all_rss: 0, all_pss: 0, processes: 0 };
  for (const pid of descendantPids(process.pid)) {
    try {
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (!/chrom/i.test(cmdline.split('\0')[0])) continue; // e.g. the /usr/bin/chromium shell wrapper
      const rss = readKb(`/proc/${pid}/status`, 'VmRSS');
      sample.all_rss += rss;
      sample.all_pss += readKb(`/proc/${pid}/smaps_rollup`, 'Pss');
      // Renderers, less the browser's own WebUI (`--top-chrome-webui`: the omnibox popup,
      // which headless Chromium preloads in some runs and not in others, 60-160 MiB).
      if (cmdline.includes('--type=renderer')) {
        if (cmdline.includes('--top-chrome-webui')) sample.browser_ui_rss += rss;
        else sample.renderer_rss += rss;
      }
      sample.processes += 1;
    } catch { /* exited meanwhile */ }
  }
  return sample;
}

// Samples every MEMORY_SAMPLE_MS until stop(); keeps the peak of each sum, and the renderers'
// peak RSS in each phase the caller names with phase() (to say which work the peak came from:
// our page does more than wllama's, the Ask tab's parts among it).
export function startMemorySampler() {
  const peak = { renderer_rss: 0, browser_ui_rss: 0, all_rss: 0, all_pss: 0, processes: 0, samples: 0, renderer_rss_by_phase: {} };
  let current = 'start';
  const take = () => {
    const s = memorySample();
    for (const key of ['renderer_rss', 'browser_ui_rss', 'all_rss', 'all_pss', 'processes']) peak[key] = Math.max(peak[key], s[key]);
    peak.renderer_rss_by_phase[current] = Math.max(peak.renderer_rss_by_phase[current] ?? 0, s.renderer_rss);
    peak.samples += 1;
  };
  take();
  const timer = setInterval(take, MEMORY_SAMPLE_MS);
  let stopped = false;
  const stop = () => {
    if (!stopped) { clearInterval(timer); take(); stopped = true; }
    return peak;
  };
  // A reading closes the last phase, so a short one is not left without a sample.
  const phase = (name) => { if (!stopped) { take(); current = name; } };
  return { stop, phase };
}
