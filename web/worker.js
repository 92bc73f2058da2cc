// Streams the files dropped through the wasm inspector. Memory stays flat: chunks of
// File.stream() are fed and dropped. Messages out: {type:"file"|"progress"|"inspection"|
// "set"|"done"|"error"}. What each file is, the core's fileRole says (from its name, size,
// first bytes and footer): a bundle, the volumes of a set, a bundle signature (`.sig`), a
// public key (PEM), or a site inventory (`ddiff inventory`, JSON: read whole, at most
// 64 MiB, and summarised by the core, {type:"inventory"}).
// - One bundle: streamed through BundleInspector as before.
// - Volumes: VolumeSetReader reads their trailers, the core decides the set ({type:"set"}),
//   then it asks for one range at a time (a run of units, or a unit of another volume to
//   rebuild a stripe) and verifies the bundle inside; {type:"done"} carries each volume's
//   state too. Memory stays flat: one range in flight.
// - With a `.sig` (and a key), the inspector checks the signature over the ddiff.json bytes
//   it verified ({signature} in "done").
// Every string sent for display went through the core's safeText (control characters,
// bidi controls and line separators escaped, length capped): the inspection's strings come
// out of BundleInspector so, the file's name and error messages are passed through it here.
// Sizes are the core's texts: the JSON's `…Text` fields, and humanBytes for the file's size
// and the rate, which only this side knows.
import init, { BundleInspector, VolumeSetReader, fileRole, humanBytes, inventorySummary, safeText } from "./pkg/ddiff_wasm.js";

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

// Bytes [start, end) of a File.
async function slice(file, start, end) {
  return new Uint8Array(await file.slice(start, end).arrayBuffer());
}

// The core's word on what each file is.
async function roleOf(file) {
  const head = await slice(file, 0, Math.min(16, file.size));
  const tail = file.size >= 72 ? await slice(file, file.size - 72, file.size) : new Uint8Array(0);
  return fileRole(file.name, file.size, head, tail);
}

// The signature check, if a .sig was given (the key is optional: without it the signature is
// said to be present, not checked).
async function signatureOf(checker, sig, key) {
  if (!sig) {
    return key ? { state: "unchecked", reason: `a public key (${safeText(key.name)}) was given but no .sig file` } : null;
  }
  const keyText = key ? await key.text() : undefined;
  const v = JSON.parse(checker.checkSignature(await slice(sig, 0, sig.size), keyText));
  v.file = safeText(sig.name);
  if (key) v.keyFile = safeText(key.name);
  return v;
}

// The read rate, as the core writes sizes (`187.3 MB/s`); none before 50 ms have passed.
const rateText = (bytes, ms) => (ms >= 50 ? `${humanBytes(bytes / (ms / 1000))}/s` : "");

// A volume set: trailers, the core's decision, then every range it asks for.
async function verifySet(vols, sig, key, listFiles) {
  readerUsed = "inline";
  const vs = new VolumeSetReader(listFiles, MAX_FILES);
  try {
    for (const f of vols) {
      const id = vs.addFile(f.name, f.size);
      for (let r; (r = vs.trailerNeed(id)); ) {
        let bytes;
        try {
          bytes = await slice(f, r[0], r[1]);
        } catch {
          bytes = new Uint8Array(0); // unreadable: its trailer is unusable
        }
        vs.giveTrailer(id, bytes);
      }
    }
    const plan = JSON.parse(vs.decide());
    self.postMessage({ type: "set", plan });
    if (!plan.ok) return;
    self.postMessage({ type: "file", name: `${plan.name || "volume set"} (${vols.length} of ${plan.data + plan.parity} volumes given)`, sizeText: plan.bundleSizeText });
    const total = plan.bundleSize;
    const totalText = plan.bundleSizeText;
    const t0 = performance.now();
    let lastPost = 0;
    let sentInspection = false;
    for (let n; (n = vs.nextRead()); ) {
      let bytes;
      try {
        bytes = await slice(vols[n[0]], n[1], n[2]);
      } catch {
        bytes = new Uint8Array(0); // a read error: those units count as bad
      }
      vs.give(bytes);
      if (!sentInspection) {
        const i = vs.inspection();
        if (i !== undefined) {
          sentInspection = true;
          self.postMessage({ type: "inspection", inspection: JSON.parse(i) });
        }
      }
      const now = performance.now();
      if (now - lastPost > 100) {
        lastPost = now;
        const progress = JSON.parse(vs.progress());
        const ms = now - t0;
        self.postMessage({ type: "progress", progress, total, ms, totalText, rateText: rateText(progress.bytes, ms) });
      }
    }
    const set = JSON.parse(vs.finish());
    const ms = performance.now() - t0;
    const signature = await signatureOf(vs, sig, key);
    self.postMessage({ type: "done", outcome: set.outcome, set, plan, signature, total, ms, totalText, rateText: rateText(set.outcome.bytes, ms), reader: readerUsed, listedBy: listFiles ? "inspector" : "none" });
  } finally {
    vs.free();
  }
}

self.onmessage = async (e) => {
  const { listFiles, reader } = e.data;
  const files = e.data.files || [e.data.file];
  try {
    await ready;
    // Checksum files (verify --write-checksum) are for sha256sum: ignored here.
    const byRole = { bundle: [], volume: [], signature: [], key: [], inventory: [], checksum: [] };
    for (const f of files) byRole[await roleOf(f)].push(f);
    const one = (role, what) => {
      if (byRole[role].length > 1) throw new Error(`more than one ${what} given (${byRole[role].map((f) => f.name).join(", ")})`);
      return byRole[role][0];
    };
    const sig = one("signature", "signature file");
    const key = one("key", "public key");
    if (byRole.volume.length && (byRole.bundle.length || byRole.inventory.length)) {
      throw new Error("give the volumes of one set, or one bundle, not both");
    }
    if (byRole.volume.length) {
      await verifySet(byRole.volume, sig, key, listFiles);
      return;
    }
    if (byRole.inventory.length === 1 && files.length === 1) {
      const file = byRole.inventory[0];
      self.postMessage({ type: "file", name: safeText(file.name), sizeText: humanBytes(file.size) });
      const bytes = new Uint8Array(await file.arrayBuffer());
      self.postMessage({ type: "inventory", summary: JSON.parse(inventorySummary(bytes)) });
      return;
    }
    const file = one("bundle", "bundle") || byRole.inventory[0];
    if (!file) throw new Error("no bundle among the files given (only a signature or a key)");
    const extra = [sig, key].filter(Boolean).map((f) => f.name);
    self.postMessage({ type: "file", name: safeText(file.name + (extra.length ? ` with ${extra.join(" and ")}` : "")), sizeText: humanBytes(file.size) });
    const totalText = humanBytes(file.size);
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
    const signature = await signatureOf(ins, sig, key);
    ins.free();
    self.postMessage({ type: "done", outcome, signature, total: file.size, ms, totalText, rateText: rateText(outcome.bytes, ms), reader: readerUsed, listedBy: listFiles ? (readerLists ? "reader" : "inspector") : "none" });
  } catch (err) {
    self.postMessage({ type: "error", message: shown(String(err && err.message ? err.message : err)) });
  }
};
