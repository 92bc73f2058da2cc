// Reads one File with File.stream() and transfers each chunk (zero-copy) through a
// MessagePort to the inspector worker, so the file is read on one thread while the other
// hashes. At most IN_FLIGHT chunks are unacknowledged: memory stays flat for any file size.
// Messages out on the port: Uint8Array chunks, then {end: true} or {error: "..."}.
const IN_FLIGHT = 8;

self.onmessage = async (e) => {
  const { file, port } = e.data;
  let credits = IN_FLIGHT;
  let wake = null;
  port.onmessage = () => {
    credits++;
    if (wake) {
      const w = wake;
      wake = null;
      w();
    }
  };
  try {
    const reader = file.stream().getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      while (credits === 0) await new Promise((r) => (wake = r));
      credits--;
      port.postMessage(value, [value.buffer]);
    }
    port.postMessage({ end: true });
  } catch (err) {
    port.postMessage({ error: String(err && err.message ? err.message : err) });
  }
};
