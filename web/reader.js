// Reads one File and transfers its bytes (zero-copy) through a MessagePort to the inspector
// worker, so the file is read on one thread while the other hashes. The bytes travel in a
// fixed pool of POOL buffers of CHUNK bytes that the inspector hands back once fed: with a
// BYOB reader nothing is allocated per chunk, so memory stays flat for any file size (no
// garbage for the collector to fall behind on). Where File.stream() has no BYOB reader, its
// own chunks are sent instead (and still at most POOL in flight).
//
// With listFiles, this thread also lists the carried layers' files: each chunk goes through
// the core's UnverifiedLister (BundleLister: the bundle framing, inflate, CRC-32, tar) before
// it is sent, so inflating costs this thread rather than the hashing one. The lister does
// not hash layers and gives no verdict; the inspector adopts its lists only for the layers
// it verified. If the wasm cannot start here, {lists: false} tells the inspector to list.
// Messages out: {lists: bool} first, then {chunk: Uint8Array}…, then
// {end: true, byob, listings: JSON|null} or {error: "..."}; {listings} on request.
// Messages in: {buffer: ArrayBuffer} (a chunk's buffer, handed back), {wantListings: true}
// (the inspector stopped early and wants the lists made so far).
const POOL = 8;
const CHUNK = 1 << 20;

async function startLister(maxFiles) {
  try {
    const wasm = await import("./pkg/ddiff_wasm.js");
    await wasm.default();
    return new wasm.BundleLister(maxFiles);
  } catch {
    return null;
  }
}

self.onmessage = async (e) => {
  const { file, port, plain, listFiles, maxFiles } = e.data;
  const free = [];
  let credits = POOL;
  let wake = null;
  let lister = null;
  let listing = true; // the lister is fed until it fails
  const listings = () => (lister ? lister.listings() : null);
  port.onmessage = (m) => {
    if (m.data.wantListings) {
      port.postMessage({ listings: listings() });
      return;
    }
    if (m.data.buffer && m.data.buffer.byteLength === CHUNK) free.push(m.data.buffer);
    credits++;
    if (wake) {
      const w = wake;
      wake = null;
      w();
    }
  };
  const slot = async () => {
    while (credits === 0) await new Promise((r) => (wake = r));
    credits--;
  };
  const list = (chunk) => {
    if (lister && listing) listing = lister.feed(chunk);
  };
  try {
    if (listFiles) lister = await startLister(maxFiles);
    port.postMessage({ lists: lister !== null });
    let byob = null;
    try {
      if (!plain) byob = file.stream().getReader({ mode: "byob" });
    } catch {
      byob = null;
    }
    if (byob) {
      for (let done = false; !done; ) {
        await slot();
        let buf = free.pop() || new ArrayBuffer(CHUNK);
        let n = 0;
        while (n < CHUNK) {
          const r = await byob.read(new Uint8Array(buf, n, CHUNK - n));
          if (r.value) buf = r.value.buffer;
          if (r.done) {
            done = true;
            break;
          }
          n += r.value.byteLength;
        }
        if (n > 0) {
          const chunk = new Uint8Array(buf, 0, n);
          list(chunk);
          port.postMessage({ chunk }, [buf]);
        } else credits++;
      }
    } else {
      const reader = file.stream().getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        await slot();
        list(value);
        port.postMessage({ chunk: value }, [value.buffer]);
      }
    }
    port.postMessage({ end: true, byob: byob !== null, listings: listings() });
  } catch (err) {
    port.postMessage({ error: String(err && err.message ? err.message : err) });
  }
};
