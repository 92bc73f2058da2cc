// The page: picks a file, hands it to the worker, renders what the core reports.
// All checking happens in Rust (worker.js + pkg/); this file only displays. Every string
// it gets from the worker (bundle contents, the file's name, errors) was made safe to show
// by the core (safeText: escaped, capped), and is set with textContent. Sizes, short media
// types, short digests and file modes are the core's texts too (the `…Text` fields beside
// the values, and the worker's humanBytes): the page shows what `ddiff inspect` prints.

const $ = (id) => document.getElementById(id);
let worker = null;

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k === "width") e.style.width = v; // CSSOM: allowed by the page's CSP
    else e.setAttribute(k, v);
  }
  for (const k of kids) if (k != null) e.append(k);
  return e;
}
function plural(n, one, many) {
  return `${n.toLocaleString("en")} ${n === 1 ? one : many}`;
}

// files: what was chosen or dropped (one bundle; or the volumes of a set; with a bundle
// signature `.sig` and a public key, optionally). The worker asks the core what each is.
function start(files) {
  if (!files || !files.length) return;
  if (worker) worker.terminate();
  for (const id of ["verdict", "summary", "layers-section", "files-section", "inventory-section", "volumes-section", "signature"]) $(id).hidden = true;
  $("run").hidden = false;
  $("file-name").textContent = ""; // the worker sends it back escaped, with the size's text
  $("file-size").textContent = "";
  $("bar-fill").style.width = "0%";
  $("bar-fill").className = "";
  $("progress-text").textContent = "starting…";
  document.body.dataset.state = "running";
  worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
  worker.onmessage = (e) => onMessage(e.data);
  worker.onerror = (e) => showError(`the verifier could not start: ${e.message || "see the console"}. Was web/build.sh run?`);
  // ?reader=inline|plain|broken forces a fallback path (the browser test runs them): inline
  // reads the file in the inspector worker itself; plain sends File.stream()'s own chunks;
  // broken starts a reader worker that fails, which must fall back to inline.
  const reader = new URLSearchParams(location.search).get("reader") || "pool";
  worker.postMessage({ files, listFiles: $("list-files").checked, reader });
}

function onMessage(m) {
  if (m.type === "file") {
    $("file-name").textContent = m.name;
    $("file-size").textContent = m.sizeText;
  } else if (m.type === "progress") showProgress(m.progress.bytes, m.progress.bytesText, m, m.progress);
  else if (m.type === "inspection") showInspection(m.inspection, []);
  else if (m.type === "set") {
    showSetPlan(m.plan);
    if (!m.plan.ok) {
      showSetRefused(m.plan);
      worker.terminate();
      worker = null;
    }
  }
  else if (m.type === "inventory") {
    showInventory(m.summary);
    document.body.dataset.state = "done";
    worker.terminate();
    worker = null;
  }
  else if (m.type === "done") {
    showProgress(m.outcome.bytes, m.outcome.bytesText, m, { blobsDone: m.outcome.blobsVerified });
    if (m.set) showSet(m.plan, m.set, m.outcome, m.ms);
    else showVerdict(m.outcome, m.ms);
    showSignature(m.signature);
    if (m.outcome.inspection) showInspection(m.outcome.inspection, m.outcome.layers);
    if (m.outcome.layers.length) showFiles(m.outcome.layers, m.outcome.inspection);
    document.body.dataset.state = "done";
    document.body.dataset.mbps = (m.outcome.bytes / 1e6 / Math.max(m.ms / 1000, 1e-6)).toFixed(1);
    document.body.dataset.reader = m.reader;
    document.body.dataset.listedBy = m.listedBy; // "reader", "inspector" or "none"
    worker.terminate();
    worker = null;
  } else if (m.type === "error") showError(m.message);
}

// m: the worker's message ({total, ms, totalText, rateText}); bytesText is the core's.
function showProgress(bytes, bytesText, m, p) {
  const { total, ms } = m;
  const pct = total ? Math.min(100, (100 * bytes) / total) : 0;
  $("bar-fill").style.width = `${pct.toFixed(1)}%`;
  const rate = bytes / Math.max(ms / 1000, 1e-6);
  const left = rate > 0 ? (total - bytes) / rate : 0;
  const blobs = p.blobsTotal ? ` · blob ${Math.min(p.blobsDone + 1, p.blobsTotal)} of ${p.blobsTotal}` : "";
  $("progress-text").textContent =
    `${bytesText} of ${m.totalText}${m.rateText ? ` · ${m.rateText}` : ""}${bytes < total ? ` · ${left.toFixed(0)} s left` : ""}${blobs}`;
}

function showError(msg) {
  const v = $("verdict");
  v.hidden = false;
  v.dataset.status = "error";
  $("verdict-title").textContent = "Could not check this file";
  $("verdict-detail").textContent = msg;
  document.body.dataset.state = "done";
}

// A site inventory (`ddiff inventory`): intact (its content digest checked by the core) and
// what it holds, or why it is refused. Every text is the core's.
function showInventory(s) {
  $("run").hidden = true;
  const v = $("verdict");
  v.hidden = false;
  if (!s.ok) {
    v.dataset.status = "bad";
    $("verdict-title").textContent = "Not an intact site inventory";
    $("verdict-detail").textContent = s.error;
    return;
  }
  v.dataset.status = "ok";
  $("verdict-title").textContent = "Site inventory: intact";
  $("verdict-detail").textContent = `content digest ${s.digest} checked`;
  const sec = $("inventory-section");
  sec.hidden = false;
  $("inventory").replaceChildren(
    el("div", { class: "ref", text: `${s.kind} ${s.source}` }),
    el("div", { class: "small", text: `${plural(s.manifests, "manifest", "manifests")} named by ${plural(s.references, "reference", "references")}; ${plural(s.blobs, "blob", "blobs")}, ${plural(s.layers, "layer", "layers")}, ${s.bytesText}` }));
}

// o: the bundle's outcome; setNote: for a volume set, what its volumes say (prefixed).
function showVerdict(o, ms, setNote = "") {
  const v = $("verdict");
  v.hidden = false;
  const secs = (ms / 1000).toFixed(2);
  if (o.ok) {
    v.dataset.status = "ok";
    $("bar-fill").className = "ok";
    $("verdict-title").textContent = setNote ? "Intact after rebuilding from parity" : "Intact";
    $("verdict-detail").textContent =
      `${setNote}${o.blobsVerified} blobs verified (digest and size), structure and metadata consistent · ${o.bytesText} in ${secs} s`;
    return;
  }
  v.dataset.status = o.problem.kind === "truncated" ? "truncated" : "bad";
  $("bar-fill").className = "bad";
  const p = o.problem;
  const titles = {
    corrupt: "Corrupt blob", truncated: "Truncated", missing: "Blobs missing", notABundle: "Not a ddiff bundle",
    structure: "Broken archive structure", metadata: "Inconsistent metadata", misuse: "Internal error",
  };
  let title = titles[p.kind] || "Not intact";
  if (p.blob) {
    const where = p.kind === "truncated" ? (p.blob.bytesRead > 0 ? "inside" : "before") : "in";
    title += ` ${where} ${p.blob.kind} ${p.blob.digestText}… (blob ${p.blob.index + 1})`;
  }
  if (p.kind === "truncated") title += ` at byte ${p.offset.toLocaleString("en")}`;
  $("verdict-title").textContent = `Not intact: ${title}`;
  $("verdict-detail").textContent = setNote + p.message;
}

// A volume set as the core decided it (before reading): each volume's file, or missing.
function showSetPlan(plan) {
  $("volumes-section").hidden = false;
  $("volumes-summary").textContent = plan.ok
    ? `${plan.name || "volume set"}: ${plan.data} data + ${plan.parity} parity volume(s), ${plan.bundleSizeText} bundle · set ${plan.set}`
    : "";
  const tbody = $("volumes-body");
  tbody.replaceChildren();
  for (const v of plan.volumes || []) {
    tbody.append(volumeRow(v, v.found === "present" ? "checking…" : v.found, v.problem || ""));
  }
  const refused = $("refused");
  refused.replaceChildren(...(plan.refused || []).map((r) =>
    el("li", {}, el("span", { class: "mono", text: r.file }), el("span", { class: "muted", text: ` not used: ${r.why}` }))));
}

function volumeRow(v, state, detail) {
  return el("tr", { "data-state": state },
    el("td", { class: "num", text: String(v.volume) }),
    el("td", { text: v.role }),
    el("td", { class: "mono small", text: v.file || "—" }),
    el("td", {}, el("span", { class: `chip vol-${state}`, text: state })),
    el("td", { class: "small", text: detail }));
}

function showSetRefused(plan) {
  $("run").hidden = true;
  const v = $("verdict");
  v.hidden = false;
  v.dataset.status = "bad";
  $("verdict-title").textContent = "Not a usable volume set";
  $("verdict-detail").textContent = plan.error;
  document.body.dataset.state = "done";
}

// The set read through: each volume intact, damaged or missing (the core's assessment),
// whether it can be recovered, then the bundle inside.
function showSet(plan, r, outcome, ms) {
  const tbody = $("volumes-body");
  tbody.replaceChildren();
  for (const v of r.volumes) {
    const detail = v.state === "damaged" ? `${v.bad_units} of ${v.units} units bad: ${v.problem}` : "";
    tbody.append(volumeRow(v, v.state, detail));
  }
  const bad = r.volumes.filter((v) => v.state !== "intact" && v.state !== "notRead");
  const list = bad.map((v) => `volume ${v.volume} is ${v.state}`).join("; ");
  $("volumes-verdict").textContent = !bad.length
    ? "every volume is intact"
    : r.recoverable
      ? `${list}; recoverable from parity (${plural(r.rebuiltUnits, "unit", "units")} rebuilt here; ddiff verify --repair rewrites the volumes)`
      : `${list}; NOT recoverable: ${plural(r.lostStripes, "stripe has", "stripes have")} more bad units than the ${plan.parity} parity volume(s) cover`;
  $("volumes-verdict").dataset.recoverable = String(r.recoverable);
  if (!r.recoverable) {
    const v = $("verdict");
    v.hidden = false;
    v.dataset.status = "bad";
    $("bar-fill").className = "bad";
    $("verdict-title").textContent = "Volume set cannot be recovered";
    $("verdict-detail").textContent = `${list}. ${r.rebuildError || ""}`.trim();
    return;
  }
  showVerdict(outcome, ms, bad.length ? `${list}; recoverable from parity · ` : "");
}

// The bundle signature (BUNDLE.sig) as the core checked it over the verified ddiff.json.
function showSignature(s) {
  const p = $("signature");
  if (!s) return;
  p.hidden = false;
  p.dataset.state = s.state;
  p.textContent =
    s.state === "valid" ? `Signature ${s.file}: signed by key ${s.keyId} (${s.algorithm}): valid`
      : s.state === "unchecked" ? `Signature ${s.file || ""}: present, not checked: ${s.reason}`
        : `Signature ${s.file}: refused${s.keyId ? ` (key ${s.keyId}, ${s.algorithm})` : ""}: ${s.reason}`;
}

function showInspection(ins, layers) {
  $("summary").hidden = false;
  const t = $("targets");
  t.replaceChildren();
  for (const tg of ins.targets) {
    const plats = tg.images.map((i) => i.platform).join(", ");
    // Its provenance (cosign signatures, attestations, SBOMs, referrers), as ddiff inspect
    // lists it: carried, not verified here (a key-based image signature is checked by
    // `ddiff load --require-signature --key`).
    const arts = (ins.artifacts || []).filter((a) => a.subject === tg.digest ||
      tg.images.some((i) => i.manifest === a.subject));
    t.append(el("div", { class: "target" },
      el("div", { class: "ref", text: tg.reference }),
      el("div", { class: "muted small", text: `${plats} · ${tg.mediaTypeText}` }),
      el("div", { class: "mono small", text: tg.digest }),
      arts.length ? el("ul", { class: "artifacts small" }, ...arts.map((a) => el("li", { "data-kind": a.kind },
        el("span", { class: "chip artifact", text: a.kindText }),
        el("span", { class: "mono", text: ` ${a.digestText}` }),
        a.typeText ? el("span", { class: "muted", text: ` ${a.typeText}` }) : null,
        a.tag ? el("span", { class: "muted mono", text: ` (tag ${a.tag})` }) : null))) : null));
  }
  const b = $("base");
  b.replaceChildren();
  if (ins.base) {
    b.append(el("div", { class: "ref", text: ins.base.references.join(", ") }),
      el("div", { class: "muted small", text: `${ins.base.diffIds.length} layers, ${ins.reliedBytesText} relied on` }));
    for (const m of ins.base.manifests) b.append(el("div", { class: "mono small", text: m }));
  } else b.append(el("div", { class: "ref", text: "none: self-contained" }));
  const c = $("carried");
  c.replaceChildren();
  for (const tg of ins.targets) for (const img of tg.images) {
    const pct = img.fullBytes ? (100 * img.carriedBytes) / img.fullBytes : 0;
    c.append(el("div", { class: "ref", text: `${img.carriedBytesText} of ${img.fullBytesText}` }),
      el("div", { class: "muted small", text: `${pct.toFixed(1)}% of ${tg.reference} (${img.platform}) travels` }),
      el("div", { class: "mini-bar" }, el("div", { width: `${Math.max(pct, 0.5).toFixed(1)}%` })));
  }
  c.append(el("div", { class: "muted small", text: `${ins.blobCount} blobs in the bundle · written by ${ins.tool}${ins.created ? " at " + ins.created : ""}` }));

  $("layers-section").hidden = false;
  const host = $("layer-tables");
  host.replaceChildren();
  for (const tg of ins.targets) for (const img of tg.images) {
    const tbody = el("tbody");
    img.layers.forEach((l, i) => {
      tbody.append(el("tr", { "data-carried": String(l.carried) },
        el("td", { class: "num", text: String(i + 1) }),
        el("td", {}, el("span", { class: `chip ${l.carried ? "carried" : "relied"}`, text: l.carried ? "carried" : "relied on" })),
        el("td", { class: "num", text: l.sizeText }),
        el("td", { class: "small", text: l.mediaTypeText }),
        el("td", { class: "mono small", title: l.digest, text: l.digestText }),
        el("td", { class: "mono small created", title: l.createdBy || "", text: (l.createdBy || "—").replace(/\s+/g, " ") })));
      if (l.patchText) {
        tbody.append(el("tr", { class: "patch" }, el("td", {}), el("td", { colspan: "5", class: "small muted", text: l.patchText })));
      }
    });
    host.append(el("h3", { text: `${tg.reference} · ${img.platform}` }),
      el("table", { class: "layers" },
        el("thead", {}, el("tr", {}, ...["#", "", "size", "type", "digest", "created by"].map((h) => el("th", { text: h })))),
        tbody));
  }
}

const SHOW_PER_LAYER = 5000;

function buildTree(files) {
  const root = { children: new Map() };
  for (const f of files) {
    const parts = f.path.split("/").filter(Boolean);
    let node = root;
    parts.forEach((p, i) => {
      if (!node.children.has(p)) node.children.set(p, { name: p, children: new Map(), entry: null });
      node = node.children.get(p);
      if (i === parts.length - 1) node.entry = f;
    });
  }
  return root;
}
function renderNode(node) {
  const ul = el("ul", { class: "tree" });
  const kids = [...node.children.values()].sort((a, b) => (b.children.size > 0) - (a.children.size > 0) || a.name.localeCompare(b.name));
  for (const k of kids) {
    const f = k.entry;
    const kind = f ? f.kind : "dir";
    const label = el("span", { class: `entry ${kind}` },
      // A whiteout deletes; an opaque marker's mode is the marker file's, not the directory's.
      el("span", { class: "mode mono", text: kind === "whiteout" ? "deleted" : f && kind !== "opaquedir" ? f.modeText : "" }),
      el("span", { class: "name", text: k.name + (k.children.size || kind === "dir" || kind === "opaquedir" ? "/" : "") }),
      f && f.kind === "file" ? el("span", { class: "size muted", text: f.sizeText }) : null,
      f && f.link ? el("span", { class: "muted", text: ` → ${f.link}` }) : null,
      kind === "opaquedir" ? el("span", { class: "tag", text: "opaque" }) : null,
      kind === "whiteout" ? el("span", { class: "tag del", text: "deletion" }) : null);
    if (k.children.size) {
      const d = el("details", { open: "" }, el("summary", {}, label), renderNode(k));
      ul.append(el("li", {}, d));
    } else ul.append(el("li", {}, label));
  }
  return ul;
}

function showFiles(layers, ins) {
  $("files-section").hidden = false;
  const host = $("files");
  host.replaceChildren();
  const rows = ins ? ins.targets.flatMap((t) => t.images.flatMap((i) => i.layers)) : [];
  for (const l of layers) {
    const row = rows.find((r) => r.digest === l.digest);
    const shown = l.files.slice(0, SHOW_PER_LAYER);
    const dels = l.files.filter((f) => f.kind === "whiteout").length;
    const box = el("details", { class: "layer-files", open: "" },
      el("summary", {},
        el("span", { class: "mono", text: l.digestText }),
        el("span", { class: "muted", text: ` · ${plural(l.fileCount, "entry", "entries")}${dels ? `, ${plural(dels, "deletion", "deletions")}` : ""} · ${l.uncompressedBytesText} uncompressed` }),
        row && row.createdBy ? el("div", { class: "mono small created", text: row.createdBy.replace(/\s+/g, " ") }) : null),
      renderNode(buildTree(shown)));
    if (l.fileCount > shown.length) box.append(el("p", { class: "muted small", text: `… ${l.fileCount - shown.length} more entries not shown` }));
    if (l.error) box.append(el("p", { class: "warn small", text: `Listing stopped: ${l.error}` }));
    host.append(box);
  }
}

const pick = $("pick");
$("file").addEventListener("change", (e) => start([...e.target.files]));
pick.addEventListener("dragover", (e) => { e.preventDefault(); pick.classList.add("over"); });
pick.addEventListener("dragleave", () => pick.classList.remove("over"));
pick.addEventListener("drop", (e) => {
  e.preventDefault();
  pick.classList.remove("over");
  start([...e.dataTransfer.files]);
});
pick.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") $("file").click(); });
document.body.dataset.state = "idle";
