// Streams one File through the wasm inspector. Memory stays flat: File.stream() hands out
// chunks, each is fed and dropped. Messages out: {type:"progress"|"inspection"|"done"|"error"}.
import init, { BundleInspector } from "./pkg/ddiff_wasm.js";

const ready = init();

self.onmessage = async (e) => {
  const { file, listFiles } = e.data;
  try {
    await ready;
    const ins = new BundleInspector(listFiles, 100000);
    const reader = file.stream().getReader();
    const t0 = performance.now();
    let lastPost = 0;
    let sentInspection = false;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
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
      if (!alive) {
        await reader.cancel();
        break;
      }
    }
    const outcome = JSON.parse(ins.finish());
    const ms = performance.now() - t0;
    ins.free();
    self.postMessage({ type: "done", outcome, total: file.size, ms });
  } catch (err) {
    self.postMessage({ type: "error", message: String(err && err.message ? err.message : err) });
  }
};
