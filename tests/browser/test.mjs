// Drives /usr/bin/chromium (headless) through the inspector page with a good, a tampered
// and a truncated bundle, and asserts the verdicts, the layer table and the file tree.
// Usage: node test.mjs WEB_DIR BUNDLE_DIR SHOT_DIR      (BENCH=FILE: only time FILE)
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

const [webArg, bundleDir, shotDir] = process.argv.slice(2);
const webDir = path.resolve(webArg);
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".wasm": "application/wasm", ".json": "application/json" };

// A static server on a loopback port, serving web/ only.
const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  let p = path.normalize(decodeURIComponent(url.pathname)).replace(/^(\.\.[/\\])+/, "");
  if (p.endsWith("/")) p += "index.html";
  const file = path.join(webDir, p);
  if (!file.startsWith(webDir + path.sep) || !fs.existsSync(file)) {
    res.writeHead(404).end("not found");
    return;
  }
  res.writeHead(200, { "content-type": TYPES[path.extname(file)] || "application/octet-stream" });
  fs.createReadStream(file).pipe(res);
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const origin = `http://127.0.0.1:${server.address().port}`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic"],
  // playwright gives every launch a fresh, empty user-data-dir of its own.
});
let failures = 0;
const fail = (msg) => { failures++; console.error(`FAIL: ${msg}`); };
const check = (cond, msg) => { if (!cond) fail(msg); else console.log(`ok: ${msg}`); };

try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const foreign = [];
  page.on("request", (r) => { if (!r.url().startsWith(origin) && !r.url().startsWith("blob:") && !r.url().startsWith("data:")) foreign.push(r.url()); });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  const resp = await page.goto(`${origin}/`);
  check(resp.ok(), `page loads from ${origin} (HTTP ${resp.status()})`);

  // file: one path, or several (dropped together: a set's volumes, a bundle with its .sig
  // and a public key).
  async function load(file) {
    await page.setInputFiles("#file", file);
    await page.waitForFunction(() => document.body.dataset.state === "done", null, { timeout: 600_000 });
    return {
      status: await page.getAttribute("#verdict", "data-status"),
      title: await page.textContent("#verdict-title"),
      detail: await page.textContent("#verdict-detail"),
      mbps: Number(await page.evaluate(() => document.body.dataset.mbps)),
    };
  }

  if (process.env.BENCH) {
    const size = fs.statSync(process.env.BENCH).size;
    // Each mode BENCH_RUNS times (default 3): this machine's timings vary by +-15 %
    // between runs, so the median is the number to report.
    const runs = Number(process.env.BENCH_RUNS || 3);
    // Peak memory: the summed RSS of every Chromium process (browser, renderer, workers),
    // sampled every 50 ms while the bundle is checked.
    const chromiumRss = () => {
      let kb = 0;
      for (const pid of fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
        try {
          const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
          if (!cmd.includes("chromium")) continue;
          const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
          if (m) kb += Number(m[1]);
        } catch { /* gone */ }
      }
      return kb * 1024;
    };
    const idle = chromiumRss();
    let peak = 0;
    const sampler = setInterval(() => { peak = Math.max(peak, chromiumRss()); }, 50);
    for (const listFiles of [true, false]) {
      const rates = [];
      for (let i = 0; i < runs; i++) {
        await page.goto(`${origin}/`);
        if (!listFiles) await page.uncheck("#list-files");
        const v = await load(process.env.BENCH);
        check(v.status === "ok", `benchmark bundle verifies (list-files=${listFiles}, run ${i + 1})`);
        rates.push(Number(v.mbps));
      }
      const sorted = [...rates].sort((a, b) => a - b);
      const median = sorted[Math.floor(sorted.length / 2)];
      console.log(`BENCH ${path.basename(process.env.BENCH)} ${(size / 1e6).toFixed(0)} MB list-files=${listFiles}: median ${median} MB/s (runs: ${rates.join(", ")})`);
    }
    clearInterval(sampler);
    console.log(`BENCH peak RSS of all Chromium processes: ${(peak / 1048576).toFixed(0)} MiB (${(idle / 1048576).toFixed(0)} MiB with the page loaded, before any bundle; the bundle is ${(size / 1048576).toFixed(0)} MiB)`);
    await page.screenshot({ path: path.join(shotDir, "bench.png"), fullPage: true });
  } else {
    const expect = JSON.parse(fs.readFileSync(path.join(bundleDir, "expect.json"), "utf8"));

    const good = await load(path.join(bundleDir, "good.bundle"));
    check(good.status === "ok", `good bundle: verdict ok (${good.title})`);
    check(good.title === "Intact", "good bundle: title says Intact");
    check(await page.evaluate(() => document.body.dataset.reader) === "pool", "good bundle: read through the reader worker's buffer pool");
    check(await page.evaluate(() => document.body.dataset.listedBy) === "reader", "good bundle: files listed on the reader thread");
    const rows = await page.$$eval("#layer-tables tbody tr", (trs) => trs.map((tr) => ({
      carried: tr.dataset.carried === "true",
      cells: [...tr.querySelectorAll("td")].map((td) => td.textContent.trim()),
    })));
    check(rows.length === 4, `layer table has 4 rows (got ${rows.length})`);
    check(rows.filter((r) => r.carried).length === expect.carriedLayers, "two layers are carried, two relied on");
    check(rows[0] && !rows[0].carried && rows[0].cells[5] === "ADD rootfs.tar /", "layer 1: relied on, made by ADD rootfs.tar /");
    check(rows[2] && rows[2].carried && rows[2].cells[5] === "COPY app/ /app/", "layer 3: carried, made by COPY app/ /app/");
    const targets = await page.textContent("#targets");
    check(targets.includes(expect.target), `targets show ${expect.target}`);
    check((await page.textContent("#base")).includes(expect.base[0]), `base needed shows ${expect.base[0]}`);
    const files = await page.textContent("#files");
    check(files.includes("hello_ddiff.txt") && files.includes("server"), "file tree lists the carried files");
    check(files.includes("5 entries, 1 deletion ·") && files.includes("1 entry ·"), "file counts read as English (1 entry, 1 deletion)");
    const deleted = await page.$$eval(".entry.whiteout .name", (n) => n.map((x) => x.textContent));
    check(deleted.includes("motd"), `whiteout etc/motd shown as a deletion (${deleted})`);
    check((await page.$$(".entry.opaquedir")).length === 1, "opaque dir var/cache marked");
    // Sizes, media types, digests and modes are the core's texts (ddiff inspect's), not
    // JavaScript copies: the `…Text` fields the wasm facade adds beside the values.
    const modes = await page.$$eval(".entry .mode", (n) => n.map((x) => x.textContent));
    check(modes.includes("-rwxr-xr-x") && modes.includes("lrwxrwxrwx"), `file modes as ddiff inspect writes them (${[...new Set(modes)]})`);
    const cells = rows.map((r) => r.cells.slice(2, 5).join(" | "));
    check(rows.every((r) => /^\d+(\.\d)? (B|kB|MB)$/.test(r.cells[2]) && /^(tar|tar\+gzip)$/.test(r.cells[3]) && /^sha256:[0-9a-f]{12}$/.test(r.cells[4])),
      `layer sizes, types and digests as ddiff inspect writes them (${cells.join("; ")})`);
    const goodText = await page.evaluate(() => document.body.textContent);
    check(!goodText.includes("undefined") && !goodText.includes("NaN"), "no undefined or NaN text on the page");
    await page.screenshot({ path: path.join(shotDir, "good.png"), fullPage: true });

    const bad = await load(path.join(bundleDir, "tampered.bundle"));
    check(bad.status === "bad", `tampered bundle: verdict bad (${bad.title})`);
    check(bad.title.startsWith("Not intact: Corrupt blob"), "tampered: says corrupt blob");
    check(bad.title.includes(expect.tampered.digest.slice(0, 19)) && bad.detail.includes(expect.tampered.digest),
      `tampered: names blob ${expect.tampered.digest}`);
    check((await page.$$("#layer-tables tbody tr")).length === 4, "tampered: the layer table is still shown");
    // The reader thread listed the tampered layer too (it does not hash); the page shows no
    // files of a layer that did not verify, nor of any after it.
    const tamperedFiles = await page.evaluate(() => (document.getElementById("files-section").hidden ? "" : document.getElementById("files").textContent));
    check(tamperedFiles.includes("server") && !tamperedFiles.includes(expect.tampered.digest.slice(7, 19)),
      "tampered: files of the verified layer shown, none of the layer that failed verification");
    await page.screenshot({ path: path.join(shotDir, "tampered.png"), fullPage: true });

    const cut = await load(path.join(bundleDir, "truncated.bundle"));
    check(cut.status === "truncated", `truncated bundle: verdict truncated (${cut.title})`);
    check(cut.title.includes(`at byte ${expect.truncated.offset.toLocaleString("en")}`) && cut.detail.includes(expect.truncated.digest),
      "truncated: names the offset and the blob");
    await page.screenshot({ path: path.join(shotDir, "truncated.png"), fullPage: true });

    // Control characters, bidi overrides and a forged "ok … intact" line in the tool, a
    // history line and file names: shown escaped (as the core's safeText makes them), never
    // raw, and the 5000-byte name capped.
    const odd = await load(path.join(bundleDir, "hostile.bundle"));
    check(odd.status === "ok", `hostile-text bundle: intact (${odd.title})`);
    const shownText = await page.evaluate(() => document.body.textContent);
    const raw = [...shownText].filter((c) => /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/.test(c));
    check(raw.length === 0, `hostile-text bundle: no raw control or bidi character on the page (${JSON.stringify(raw.join(""))})`);
    const summary = await page.textContent("#summary");
    check(summary.includes(expect.hostile.tool), `hostile-text bundle: the tool is shown escaped (${expect.hostile.tool})`);
    const oddFiles = await page.textContent("#files");
    for (const n of expect.hostile.names) check(oddFiles.includes(n), `hostile-text bundle: file name shown escaped: ${n}`);
    check(oddFiles.includes(expect.hostile.createdBy.replace(/\s+/g, " ")), "hostile-text bundle: the history line is shown escaped");
    const longest = await page.$$eval(".entry .name", (ns) => Math.max(...ns.map((n) => n.textContent.length)));
    check(longest < 4200 && oddFiles.includes("bytes not shown)…"), `hostile-text bundle: the 5000-byte name is capped (longest name ${longest})`);
    await page.screenshot({ path: path.join(shotDir, "hostile.png"), fullPage: true });

    // A site inventory dropped on the page: the core checks it and summarises what the site
    // holds; a flipped byte is refused with the core's reason and no summary.
    const inv = await load(path.join(bundleDir, "site.inventory.json"));
    check(inv.status === "ok" && inv.title === "Site inventory: intact", `site inventory: intact (${inv.title})`);
    check(inv.detail.includes(expect.inventory.digest), "site inventory: its content digest is shown");
    const invText = await page.textContent("#inventory");
    check(invText.includes(`${expect.inventory.layers} layer`) && invText.includes("docker-daemon:"),
      `site inventory: what it holds is shown (${invText})`);
    await page.screenshot({ path: path.join(shotDir, "inventory.png"), fullPage: true });
    const badInv = await load(path.join(bundleDir, "damaged.inventory.json"));
    check(badInv.status === "bad" && badInv.title === "Not an intact site inventory" && badInv.detail.length > 0,
      `damaged inventory: refused with a reason (${badInv.title}: ${badInv.detail})`);
    check(await page.isHidden("#inventory-section"), "damaged inventory: no summary shown");

    // Volume sets (issue 13): the volumes chosen together, in any order; the core decides
    // the set, checks every unit's CRC-32, rebuilds from parity and verifies the bundle.
    const setFiles = (dir) => fs.readdirSync(path.join(bundleDir, dir)).sort().reverse().map((f) => path.join(bundleDir, dir, f));
    const volumeRows = () => page.$$eval("#volumes-body tr", (trs) => trs.map((tr) => ({
      state: tr.dataset.state, cells: [...tr.querySelectorAll("td")].map((td) => td.textContent.trim()),
    })));
    const total = expect.setData + 2;
    const setOk = await load(setFiles("set-ok"));
    let vrows = await volumeRows();
    check(setOk.status === "ok" && setOk.title === "Intact", `volume set, every volume given: intact (${setOk.title})`);
    check(vrows.length === total && vrows.every((r) => r.state === "intact"), `volume set: ${total} volumes, each intact (${vrows.map((r) => r.state)})`);
    check((await page.$$("#layer-tables tbody tr")).length === 4, "volume set: the bundle's layer table is shown");
    check((await page.textContent("#volumes-verdict")) === "every volume is intact", "volume set: says every volume is intact");

    const rec = await load(setFiles("set-recoverable"));
    vrows = await volumeRows();
    check(rec.status === "ok" && rec.title === "Intact after rebuilding from parity", `volume 2 deleted, volume 1 damaged, parity 2: the bundle verifies (${rec.title}: ${rec.detail})`);
    check(vrows[0] && vrows[0].state === "damaged" && vrows[0].cells[4].startsWith("1 of ") && vrows[1] && vrows[1].state === "missing" && vrows.slice(2).every((r) => r.state === "intact"),
      `volume 1 damaged (one unit), volume 2 missing, the rest intact (${vrows.map((r) => r.state)})`);
    const recText = await page.textContent("#volumes-verdict");
    check(recText.startsWith("volume 1 is damaged; volume 2 is missing; recoverable from parity"), `the set says it is recoverable from parity (${recText})`);
    check(rec.detail.startsWith("volume 1 is damaged; volume 2 is missing; recoverable from parity · ") && rec.detail.includes("blobs verified"),
      "the verdict names the bad volumes and the verified bundle");
    await page.screenshot({ path: path.join(shotDir, "set-recoverable.png"), fullPage: true });

    const lost = await load(setFiles("set-lost"));
    vrows = await volumeRows();
    check(lost.status === "bad" && lost.title === "Volume set cannot be recovered", `volumes 1, 2 and 4 deleted, parity 2: not recoverable (${lost.title})`);
    check(lost.detail.includes("stripe 0 cannot be rebuilt: 3 of its 7 units are missing or damaged (volumes 1, 2, 4), parity covers 2"),
      `not recoverable: says which stripe and volumes (${lost.detail})`);
    check(vrows.filter((r) => r.state === "missing").length === 3 && await page.getAttribute("#volumes-verdict", "data-recoverable") === "false",
      "not recoverable: three volumes missing, the set marked not recoverable");
    await page.screenshot({ path: path.join(shotDir, "set-lost.png"), fullPage: true });

    const foreign = await load(setFiles("set-foreign"));
    vrows = await volumeRows();
    const refusedText = await page.textContent("#refused");
    check(refusedText.includes("app.ddiff.002") && refusedText.includes("not used: a volume of another set (sha256:"),
      `a volume of another set is refused by name (${refusedText})`);
    check(foreign.status === "ok" && vrows[1] && vrows[1].state === "missing", `the refused volume counts as missing, rebuilt from parity (${foreign.title})`);

    // Provenance (issue 14): each target lists its signature, attestation and SBOM.
    await load(path.join(bundleDir, "provenance.bundle"));
    const arts = await page.$$eval("#targets ul.artifacts li", (lis) => lis.map((li) => ({ kind: li.dataset.kind, text: li.textContent })));
    check(arts.map((a) => a.kind).join(",") === "signature,attestation,sbom", `the target lists its artifacts (${arts.map((a) => a.kind)})`);
    check(arts.every((a, i) => a.text.includes(expect.artifacts[i].digest.slice(0, 19))), "each artifact's digest is shown");
    check(arts[1] && arts[1].text.includes("https://slsa.dev/provenance/v1") && arts[2] && arts[2].text.includes("application/spdx+json") && arts[0].text.includes(".sig)"),
      `predicate type, SBOM type and cosign tag shown (${arts.map((a) => a.text).join(" | ")})`);
    await load(path.join(bundleDir, "good.bundle"));
    check((await page.$$("#targets ul.artifacts li")).length === 0, "a bundle without provenance lists no artifacts");

    // Bundle signatures (issue 14): the core checks BUNDLE.sig over the verified ddiff.json.
    const sigState = async () => [await page.getAttribute("#signature", "data-state"), await page.textContent("#signature"), await page.isHidden("#signature")];
    const signed = ["good.bundle", "good.bundle.sig"].map((f) => path.join(bundleDir, f));
    let v = await load([...signed, path.join(bundleDir, "signing.pub")]);
    let [st, txt] = await sigState();
    check(v.status === "ok" && st === "valid" && txt.includes(`signed by key ${expect.keyId} (ECDSA-P256-SHA256): valid`), `signed bundle with its key: valid (${txt})`);
    v = await load([...signed, path.join(bundleDir, "other.pub")]);
    [st, txt] = await sigState();
    check(v.status === "ok" && st === "refused" && txt.includes("signature does not match"), `signed bundle with another key: refused (${txt})`);
    v = await load([path.join(bundleDir, "meta-flipped.bundle"), path.join(bundleDir, "good.bundle.sig"), path.join(bundleDir, "signing.pub")]);
    [st, txt] = await sigState();
    check(v.status === "bad" && st === "refused" && txt.includes("signature does not match"), `a byte of ddiff.json changed: bundle and signature refused (${v.title}; ${txt})`);
    v = await load([path.join(bundleDir, "tampered.bundle"), path.join(bundleDir, "good.bundle.sig"), path.join(bundleDir, "signing.pub")]);
    [st, txt] = await sigState();
    check(v.status === "bad" && st === "refused" && txt.includes("the bundle is not intact"), `a blob tampered, ddiff.json intact: the matching signature is refused all the same (${txt})`);
    await load(signed);
    [st, txt] = await sigState();
    check(st === "unchecked" && txt.includes("present, not checked"), `a signature without a key: present, not checked (${txt})`);
    await load(path.join(bundleDir, "good.bundle"));
    check((await sigState())[2], "no signature given: no signature line");
    await page.screenshot({ path: path.join(shotDir, "signature.png"), fullPage: true });

    // The fallback ways of reading the file give the same verdicts: the inspector worker
    // reading itself (no nested worker), and File.stream()'s own chunks (no BYOB reader).
    // A reader worker that fails to start falls back to reading inline.
    await page.goto(`${origin}/?reader=broken`);
    const fb = await load(path.join(bundleDir, "good.bundle"));
    const fbUsed = await page.evaluate(() => document.body.dataset.reader);
    check(fb.status === "ok" && fbUsed === "inline", `reader worker failing to start: read inline instead (${fb.title}, ${fbUsed})`);
    const fbList = await page.evaluate(() => [document.body.dataset.listedBy, document.getElementById("files").textContent]);
    check(fbList[0] === "inspector" && fbList[1].includes("hello_ddiff.txt"), `reader worker failing to start: the inspector lists the files (${fbList[0]})`);
    for (const mode of ["pool", "inline", "plain"]) {
      await page.goto(`${origin}/?reader=${mode}`);
      if (process.env.BIG_BUNDLE) {
        const b = await load(process.env.BIG_BUNDLE);
        const used = await page.evaluate(() => document.body.dataset.reader);
        check(b.status === "ok" && used === mode, `reader=${mode}: a 5 MiB bundle (many reads) is intact (${b.title}, read by ${used})`);
        // A byte flipped in the middle of the 5 MiB layer (the first carried one): the verifier
        // fails at that layer's end, while the reader, which lists without hashing, may have
        // listed it and the next. No files of an unverified layer may be shown.
        const bigTampered = path.join(shotDir, "big-tampered.bundle");
        const bytes = fs.readFileSync(process.env.BIG_BUNDLE);
        bytes[bytes.length >> 1] ^= 1;
        fs.writeFileSync(bigTampered, bytes);
        const bt = await load(bigTampered);
        const btFiles = await page.evaluate(() => (document.getElementById("files-section").hidden ? "" : document.getElementById("files").textContent));
        check(bt.status === "bad" && bt.title.startsWith("Not intact: Corrupt blob") && !btFiles.includes("server") && !btFiles.includes("hello_ddiff.txt"),
          `reader=${mode}: a 5 MiB bundle damaged in its big layer is not intact, and no file of it or after it is shown (${bt.title})`);
      }
      if (mode === "pool") continue; // the default: checked in detail above
      const g = await load(path.join(bundleDir, "good.bundle"));
      const n = (await page.$$("#layer-tables tbody tr")).length;
      check(g.status === "ok" && n === 4, `reader=${mode}: good bundle intact, 4 layer rows (${g.title}, ${n})`);
      const used = await page.evaluate(() => document.body.dataset.reader);
      check(used === mode, `reader=${mode}: the page read the file that way (${used})`);
      const [lb, lf] = await page.evaluate(() => [document.body.dataset.listedBy, document.getElementById("files").textContent]);
      const want = mode === "inline" ? "inspector" : "reader";
      check(lb === want && lf.includes("hello_ddiff.txt") && lf.includes("server"), `reader=${mode}: files listed by the ${want} (${lb})`);
      const t = await load(path.join(bundleDir, "tampered.bundle"));
      check(t.status === "bad" && t.detail.includes(expect.tampered.digest), `reader=${mode}: tampered bundle names the blob (${t.title})`);
      const c = await load(path.join(bundleDir, "truncated.bundle"));
      check(c.status === "truncated", `reader=${mode}: truncated bundle is truncated (${c.title})`);
    }
  }
  check(foreign.length === 0, `no requests outside ${origin} (${foreign.join(", ")})`);
  check(errors.length === 0, `no page errors (${errors.join(" | ")})`);
} catch (e) {
  fail(String(e && e.stack ? e.stack : e));
} finally {
  await browser.close();
  server.close();
}
console.log(`${failures === 0 ? "PASS" : "FAIL"}: browser test, ${failures} failed checks`);
process.exit(failures === 0 ? 0 : 1);
