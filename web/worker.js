// Streams one File through the wasm inspector. Memory stays flat: chunks of File.stream()
// are fed and dropped. Messages out: {type:"file"|"progress"|"inspection"|"done"|"error"}.
// Every string sent for display went through the core's safeText (control characters,
// bidi controls and line separators escaped, length capped): the inspection's strings come
// out of BundleInspector so, the file's name and error messages are passed through it here.
import init, { BundleInspector, safeText } from "./pkg/ddiff_wasm.js";

let wasmReady = false;
const ready = init().then(() => { wasmReady = true; });
// Before the wasm runs, a message is the browser's own (about loading it).
const shown = (s) => (wasmReady ? safeText(s) : s);
// How the file was read: "pool" (reader.js, BYOB buffer pool), "plain" (reader.js, the
// stream's own chunks) or "inline" (this worker). Reported with the outcome.
let readerUsed = "inline";

// The file read in this worker, File.stream()'s own chunks.
async function* inline(file) {
  readerUsed = "inline";
  const r = file.stream().getReader();
  try {
    for (;;) {
      const { done, value } = await r.read();
      if (done) return;
      yield value;
    }
  } finally {
    r.cancel().catch(() => {});
  }
}

// The file's chunks. A second worker (reader.js) reads them and transfers them here, so
// reading and hashing run on two threads (1.1x in headless Chromium, docs/benchmarks.md).
// Where a worker cannot start one, or it fails before its first chunk, this thread reads
// the file itself. `mode` ("inline", "plain", "broken") forces a path for the tests.
async function* chunksOf(file, mode) {
  let reader = null;
  try {
    if (mode !== "inline") {
      const script = mode === "broken" ? "./no-such-reader.js" : "./reader.js";
      reader = new Worker(new URL(script, import.meta.url), { type: "module" });
    }
  } catch {
    reader = null;
  }
  if (!reader) {
    yield* inline(file);
    return;
  }
  const channel = new MessageChannel();
  const queue = [];
  let wake = null;
  const push = (m) => {
    queue.push(m);
    if (wake) {
      const w = wake;
      wake = null;
      w();
    }
  };
  channel.port1.onmessage = (m) => push(m.data);
  reader.onerror = (ev) => {
    ev.preventDefault();
    push({ error: `the file reader stopped: ${ev.message || "unknown error"}`, startFailed: true });
  };
  reader.postMessage({ file, port: channel.port2, plain: mode === "plain" }, [channel.port2]);
  readerUsed = mode === "plain" ? "plain" : "pool";
  let got = 0;
  try {
    for (;;) {
      while (queue.length === 0) await new Promise((r) => (wake = r));
      const m = queue.shift();
      if (m.chunk) {
        got++;
        yield m.chunk;
        // Fed: hand the buffer back for the next read.
        channel.port1.postMessage({ buffer: m.chunk.buffer }, [m.chunk.buffer]);
      } else if (m.end) {
        if (!m.byob) readerUsed = "plain"; // no BYOB reader in this browser
        return;
      } else if (m.startFailed && got === 0) {
        // The reader worker could not start (e.g. no nested module workers): read here.
        reader.terminate();
        yield* inline(file);
        return;
      } else {
        throw new Error(`cannot read ${file.name}: ${m.error}`);
      }
    }
  } finally {
    reader.terminate();
    channel.port1.close();
  }
}

self.onmessage = async (e) => {
  const { file, listFiles, reader } = e.data;
  try {
    await ready;
    self.postMessage({ type: "file", name: safeText(file.name) });
    const ins = new BundleInspector(listFiles, 100000);
    const t0 = performance.now();
    let lastPost = 0;
    let sentInspection = false;
    for await (const value of chunksOf(file, reader)) {
      const alive = ins.feed(value);
      const now = performance.now();
      if (!sentInspection) {
        const i = ins.inspection();
        if (i !== undefined) {
          sentInspection = true;
          self.postMessage({ type: "inspection", inspection: JSON.parse(i) });
        }
      }
      if (now - lastPost > 100) {
        lastPost = now;
        self.postMessage({ type: "progress", progress: JSON.parse(ins.progress()), total: file.size, ms: now - t0 });
      }
      if (!alive) break;
    }
    const outcome = JSON.parse(ins.finish());
    const ms = performance.now() - t0;
    ins.free();
    self.postMessage({ type: "done", outcome, total: file.size, ms, reader: readerUsed });
  } catch (err) {
    self.postMessage({ type: "error", message: shown(String(err && err.message ? err.message : err)) });
  }
};
