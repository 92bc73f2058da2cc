// Reads one File and transfers its bytes (zero-copy) through a MessagePort to the inspector
// worker, so the file is read on one thread while the other hashes. The bytes travel in a
// fixed pool of POOL buffers of CHUNK bytes that the inspector hands back once fed: with a
// BYOB reader nothing is allocated per chunk, so memory stays flat for any file size (no
// garbage for the collector to fall behind on). Where File.stream() has no BYOB reader, its
// own chunks are sent instead (and still at most POOL in flight).
// Messages out: {chunk: Uint8Array}, then {end: true, byob} or {error: "..."}.
// Messages in: {buffer: ArrayBuffer} (a chunk's buffer, handed back).
const POOL = 8;
const CHUNK = 1 << 20;

self.onmessage = async (e) => {
  const { file, port, plain } = e.data;
  const free = [];
  let credits = POOL;
  let wake = null;
  port.onmessage = (m) => {
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
  try {
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
        if (n > 0) port.postMessage({ chunk: new Uint8Array(buf, 0, n) }, [buf]);
        else credits++;
      }
    } else {
      const reader = file.stream().getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        await slot();
        port.postMessage({ chunk: value }, [value.buffer]);
      }
    }
    port.postMessage({ end: true, byob: byob !== null });
  } catch (err) {
    port.postMessage({ error: String(err && err.message ? err.message : err) });
  }
};
