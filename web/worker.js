// Streams one File through the wasm inspector. Memory stays flat: chunks of File.stream()
// are fed and dropped. Messages out: {type:"file"|"progress"|"inspection"|"done"|"error"}.
// A file that starts with `{` is taken as a site inventory (`ddiff inventory`; a bundle is a
// tar, an original bundle gzip): read whole (at most 64 MiB) and summarised by the core
// ({type:"inventory"}).
// Every string sent for display went through the core's safeText (control characters,
// bidi controls and line separators escaped, length capped): the inspection's strings come
// out of BundleInspector so, the file's name and error messages are passed through it here.
// Sizes are the core's texts: the JSON's `…Text` fields, and humanBytes for the file's size
// and the rate, which only this side knows.
import init, { BundleInspector, humanBytes, inventorySummary, safeText } from "./pkg/ddiff_wasm.js";

let wasmReady = false;
const ready = init().then(() => { wasmReady = true; });
// Before the wasm runs, a message is the browser's own (about loading it).
const shown = (s) => (wasmReady ? safeText(s) : s);
// How the file was read: "pool" (reader.js, BYOB buffer pool), "plain" (reader.js, the
// stream's own chunks) or "inline" (this worker). Reported with the outcome.
let readerUsed = "inline";
// Whether reader.js lists the files (it said {lists: true}); then this thread only verifies
// and adopts the reader's lists (readerListings, JSON) for the layers it verified.
let readerLists = false;
let readerListings = null;
const MAX_FILES = 100000;

// The file read in this worker, File.stream()'s own chunks.
async function* inline(file) {
  readerUsed = "inline";
  readerLists = false;
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
async function* chunksOf(file, mode, listFiles) {
  readerLists = false;
  readerListings = null;
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
  reader.postMessage({ file, port: channel.port2, plain: mode === "plain", listFiles, maxFiles: MAX_FILES }, [channel.port2]);
  readerUsed = mode === "plain" ? "plain" : "pool";
  let got = 0;
  let ended = false;
  const next = async () => {
    while (queue.length === 0) await new Promise((r) => (wake = r));
    return queue.shift();
  };
  try {
    for (;;) {
      const m = await next();
      if (m.lists !== undefined) {
        readerLists = m.lists;
      } else if (m.chunk) {
        got++;
        yield m.chunk;
        // Fed: hand the buffer back for the next read.
        channel.port1.postMessage({ buffer: m.chunk.buffer }, [m.chunk.buffer]);
      } else if (m.end) {
        if (!m.byob) readerUsed = "plain"; // no BYOB reader in this browser
        readerListings = m.listings;
        ended = true;
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
    if (readerLists && !ended) {
      // Stopped early (a damaged bundle): the reader is ahead of this thread, so its lists
      // cover every layer verified here. Ask for them; give up after a second.
      channel.port1.postMessage({ wantListings: true });
      const timeout = new Promise((r) => setTimeout(() => r({ listings: null }), 1000));
      for (;;) {
        const m = await Promise.race([next(), timeout]);
        if (m.listings !== undefined || m.error || m.end) {
          readerListings = m.listings ?? null;
          break;
        }
      }
    }
    reader.terminate();
    channel.port1.close();
  }
}

self.onmessage = async (e) => {
  const { file, listFiles, reader } = e.data;
  try {
    await ready;
    self.postMessage({ type: "file", name: safeText(file.name), sizeText: humanBytes(file.size) });
    const head = new Uint8Array(await file.slice(0, 1).arrayBuffer());
    if (head[0] === 0x7b && file.size <= 64 * 1024 * 1024) {
      const bytes = new Uint8Array(await file.arrayBuffer());
      self.postMessage({ type: "inventory", summary: JSON.parse(inventorySummary(bytes)) });
      return;
    }
    const totalText = humanBytes(file.size);
    // The read rate, as the core writes sizes (`187.3 MB/s`); none before 50 ms have passed.
    const rateText = (bytes, ms) => (ms >= 50 ? `${humanBytes(bytes / (ms / 1000))}/s` : "");
    // Made at the first chunk, when it is known whether the reader lists the files.
    let ins = null;
    const inspector = () => (ins ??= new BundleInspector(listFiles && !readerLists, MAX_FILES));
    const t0 = performance.now();
    let lastPost = 0;
    let sentInspection = false;
    for await (const value of chunksOf(file, reader, listFiles)) {
      const alive = inspector().feed(value);
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
        const progress = JSON.parse(ins.progress());
        const ms = now - t0;
        self.postMessage({ type: "progress", progress, total: file.size, ms, totalText, rateText: rateText(progress.bytes, ms) });
      }
      if (!alive) break;
    }
    inspector();
    // The reader's lists, for the layers this thread verified (the core keeps no others).
    if (listFiles && readerLists && readerListings) ins.adoptListings(readerListings);
    const outcome = JSON.parse(ins.finish());
    const ms = performance.now() - t0;
    ins.free();
    self.postMessage({ type: "done", outcome, total: file.size, ms, totalText, rateText: rateText(outcome.bytes, ms), reader: readerUsed, listedBy: listFiles ? (readerLists ? "reader" : "inspector") : "none" });
  } catch (err) {
    self.postMessage({ type: "error", message: shown(String(err && err.message ? err.message : err)) });
  }
};
