// Cargo runner for wasm32-wasip1 test binaries: runs one under node's WASI (preview1) with
// the arguments cargo passes, and exits with its exit code. Used by tests/wasm/core-tests.sh
// to run ddiff-core's unit tests on a 32-bit wasm target, as the browser runs the core.
//   CARGO_TARGET_WASM32_WASIP1_RUNNER="node tests/wasm/wasi-run.mjs" cargo test --target wasm32-wasip1 -p ddiff-core
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";
import process from "node:process";

const [wasmPath, ...args] = process.argv.slice(2);
const wasi = new WASI({
  version: "preview1",
  args: [wasmPath, ...args],
  env: { RUST_BACKTRACE: "0" },
  returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(wasmPath));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);
