// Images: one prompt, a grid of 4–16 candidates. Every candidate is its own request, all sent at once; the
// scheduler runs as many as there are free worker slots for the model and queues the rest, so tiles finish
// one by one and each shows its own time. Results live in this browser's IndexedDB (the PNG bytes, prompt,
// model, receipt): the last grid and the history come back after a reload. Nothing of it goes to the server.
import { api, errorText, firstOnline, money } from "./core.js";
import { html, ReceiptBadge, useEffect, useLoad, useRef, useState } from "./ui.js";

const COUNTS = [4, 6, 8, 12, 16];

async function imageModels() {
  const { data } = await api("/one/catalog", { key: null });
  return data.models.filter((m) => m.tasks.includes("image"));
}

// ---- the local image history: one IndexedDB record per run, newest first ----

const DB_NAME = "one-images";
const RUNS = "runs";

function openHistory() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(RUNS, { keyPath: "id" });
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/** Runs `work(store)` in one transaction; resolves with the last request's result once it commits. */
async function inHistory(mode, work) {
  const db = await openHistory();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(RUNS, mode);
    const request = work(tx.objectStore(RUNS));
    tx.oncomplete = () => (db.close(), resolve(request && request.result));
    tx.onerror = tx.onabort = () => (db.close(), reject(tx.error));
  });
}

export const imageHistory = {
  async list() {
    const runs = (await inHistory("readonly", (s) => s.getAll())) || [];
    return runs.sort((a, b) => b.time - a.time);
  },
  save: (run) => inHistory("readwrite", (s) => s.put(run)),
  remove: (id) => inHistory("readwrite", (s) => s.delete(id)),
  clear: () => inHistory("readwrite", (s) => s.clear()),
};

const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;

export function Images() {
  const catalog = useLoad(imageModels, []);
  const [picked, setPicked] = useState("");
  const [count, setCount] = useState(String(COUNTS[0]));
  const [prompt, setPrompt] = useState("");
  const [cost, setCost] = useState("");
  const [status, setStatus] = useState("");
  const [shown, setShown] = useState(null); // the run in the grid: { id, prompt, model, time, tiles }
  const [runs, setRuns] = useState([]); // the history, newest first
  const [busy, setBusy] = useState(false);
  const urls = useRef([]); // object URLs of the shown images, freed when replaced or when the page goes

  const models = catalog.data || [];
  const model = picked || (firstOnline(models) || {}).id || "";

  /** Shows a stored run: object URLs made afresh from its bytes (the ones from before a reload are gone). */
  function show(run) {
    urls.current.splice(0).forEach((u) => URL.revokeObjectURL(u));
    const tiles = run.tiles.map((t) => {
      if (!t.png) return t;
      const url = URL.createObjectURL(t.png);
      urls.current.push(url);
      return { ...t, state: "ready", url };
    });
    setShown({ ...run, tiles });
  }

  async function refreshHistory(showNewest = false) {
    try {
      const all = await imageHistory.list();
      setRuns(all);
      if (showNewest && all.length) show(all[0]);
    } catch (err) {
      setStatus(`Image history unavailable in this browser: ${errorText(err)}`);
    }
  }

  useEffect(() => {
    refreshHistory(true);
    return () => urls.current.forEach((u) => URL.revokeObjectURL(u));
  }, []);
  useEffect(() => {
    if (!model) return;
    let current = true;
    api("/one/quote", { method: "POST", body: { model, task: "image", body: { n: Number(count) } } })
      .then(({ data }) => current && setCost(`at most ${money(data.max_amount, data.unit || "credit")} for ${count}`))
      .catch(() => current && setCost(""));
    return () => (current = false);
  }, [model, count]);

  async function candidate(i, text, update) {
    const started = performance.now();
    try {
      const { data } = await api("/v1/images/generations", { method: "POST", body: { model, prompt: text, n: 1, response_format: "b64_json" } });
      const bytes = Uint8Array.from(atob(data.data[0].b64_json), (c) => c.charCodeAt(0));
      const png = new Blob([bytes], { type: "image/png" });
      const url = URL.createObjectURL(png);
      urls.current.push(url);
      const receipt = data.receipt && { hash: data.receipt.hash, charge: data.receipt.charge };
      return update(i, { state: "ready", png, url, receipt, ms: performance.now() - started });
    } catch (err) {
      return update(i, { state: "failed", error: errorText(err), ms: performance.now() - started });
    }
  }

  async function generate(e) {
    e.preventDefault();
    const text = prompt.trim();
    if (!text) return setStatus("Describe the image first.");
    urls.current.splice(0).forEach((u) => URL.revokeObjectURL(u));
    const n = Number(count);
    const run = { id: `${Date.now()}-${Math.random().toString(36).slice(2, 8)}`, prompt: text, model, time: Date.now() };
    const tiles = Array.from({ length: n }, () => ({ state: "loading" }));
    const update = (i, tile) => {
      tiles[i] = tile;
      setShown({ ...run, tiles: [...tiles] });
      return tile.state === "ready";
    };
    setShown({ ...run, tiles: [...tiles] });
    setBusy(true);
    const slots = await api("/one/catalog", { key: null })
      .then(({ data }) => (data.models.find((m) => m.id === model) || {}).free_slots)
      .catch(() => undefined);
    setStatus(`${n} requests sent at once; ${slots === undefined ? "the free worker slots" : `${slots} free worker slot${slots === 1 ? "" : "s"}`} `
      + `serve ${model} now, so that many run at a time and the rest wait their turn. Each tile shows its own time.`);
    const started = performance.now();
    const results = await Promise.all(tiles.map((_, i) => candidate(i, text, update)));
    const ok = results.filter(Boolean).length;
    const times = tiles.map((t) => t.ms);
    setStatus(`${ok} of ${n} ready in ${seconds(performance.now() - started)} (tiles took ${seconds(Math.min(...times))} to ${seconds(Math.max(...times))}; `
      + `${slots === undefined ? "" : `${slots} at a time, `}the rest queued).` + (ok < n ? " Failed tiles were not charged." : ""));
    setBusy(false);
    try {
      // only what a reload needs: the PNG bytes, receipt and time of each ready tile (object URLs die with the tab)
      await imageHistory.save({ ...run, tiles: tiles.filter((t) => t.state === "ready").map(({ png, receipt, ms }) => ({ png, receipt, ms })) });
    } catch (err) {
      setStatus((s) => `${s} Not kept in the image history: ${errorText(err)}`);
    }
    refreshHistory();
  }

  async function forget(run) {
    await imageHistory.remove(run.id);
    if (shown && shown.id === run.id) {
      urls.current.splice(0).forEach((u) => URL.revokeObjectURL(u));
      setShown(null);
    }
    refreshHistory();
  }

  async function forgetAll() {
    await imageHistory.clear();
    urls.current.splice(0).forEach((u) => URL.revokeObjectURL(u));
    setShown(null);
    refreshHistory();
  }

  return html`
    <div class="one-page">
      <form class="one-card" onSubmit=${generate}>
        <textarea id="image-prompt" class="one-textarea" rows="2" placeholder="A lighthouse on a cliff at dusk, oil painting"
          aria-label="Describe the image" value=${prompt} onInput=${(e) => setPrompt(e.target.value)} />
        <div class="one-row">
          <select id="image-model" class="one-select" aria-label="Model" value=${model} onChange=${(e) => setPicked(e.target.value)}>
            ${models.map((m) => html`<option key=${m.id} value=${m.id}>${`${m.available ? "●" : "○"} ${m.id}`}</option>`)}
          </select>
          <select id="image-count" class="one-select" aria-label="How many candidates" value=${count} onChange=${(e) => setCount(e.target.value)}>
            ${COUNTS.map((n) => html`<option key=${n} value=${String(n)}>${`${n} images`}</option>`)}
          </select>
          <span class="one-muted" id="image-cost">${cost}</span>
          <span class="one-spacer" />
          <button type="submit" class="one-button" id="generate-button" disabled=${busy}>Generate</button>
        </div>
      </form>
      <p class="one-muted" id="image-status" role="status">${catalog.error ? `catalog unavailable: ${errorText(catalog.error)}` : status}</p>
      ${shown && !busy && !status && html`<p class="one-muted" id="image-shown">${`“${shown.prompt}” · ${shown.model} · ${new Date(shown.time).toLocaleString()}`}</p>`}
      <div class="one-grid" id="image-grid">${(shown ? shown.tiles : []).map((tile, i) => html`<${Tile} key=${i} index=${i} tile=${tile} />`)}</div>
      <${History} runs=${runs} shown=${shown} onShow=${(run) => (setStatus(""), show(run))} onDelete=${forget} onClear=${forgetAll} />
    </div>`;
}

function Tile({ index, tile }) {
  if (tile.state === "loading") {
    return html`
      <figure class="one-tile one-loading" data-index=${index}>
        <div class="one-spinner" />
        <figcaption class="one-muted">${`#${index + 1} generating…`}</figcaption>
      </figure>`;
  }
  if (tile.state === "failed") {
    return html`<figure class="one-tile one-failed" data-index=${index}><p class="one-error">${tile.error}</p></figure>`;
  }
  const { url, receipt, ms } = tile;
  return html`
    <figure class="one-tile" data-index=${index}>
      <img src=${url} alt=${`candidate ${index + 1}`} class="one-image" />
      <figcaption class="one-row">
        <a href=${url} target="_blank" rel="noopener" class="one-link" data-testid="open-image">Open</a>
        <a href=${url} download=${`one-image-${index + 1}.png`} class="one-link" data-testid="download-image">Download</a>
        ${ms !== undefined && html`<span class="one-muted" data-testid="tile-time" title="from sending its request to its image">${seconds(ms)}</span>`}
        <span class="one-spacer" />
        ${receipt && html`<${ReceiptBadge} receipt=${receipt} />`}
      </figcaption>
    </figure>`;
}

/** The runs kept in this browser, newest first: show one again, delete one, or clear all (after a confirm). */
function History({ runs, shown, onShow, onDelete, onClear }) {
  const [clearing, setClearing] = useState(false);
  if (!runs.length) return null;
  return html`
    <section class="one-card one-history" id="image-history" aria-labelledby="image-history-title">
      <div class="one-row">
        <h3 id="image-history-title">History</h3>
        <span class="one-muted">kept in this browser only</span>
        <span class="one-spacer" />
        ${clearing
          ? html`<span class="one-row"><span>${`Delete all ${runs.length} runs?`}</span>
              <button class="one-button one-danger" id="confirm-clear-history" onClick=${() => (setClearing(false), onClear())}>Delete all</button>
              <button class="one-button one-secondary" onClick=${() => setClearing(false)}>Keep</button></span>`
          : html`<button class="one-button one-secondary" id="clear-history" onClick=${() => setClearing(true)}>Clear all…</button>`}
      </div>
      <ul class="one-history-list">
        ${runs.map((run) => html`
          <li key=${run.id} data-run=${run.id} class=${shown && shown.id === run.id ? "active" : ""}>
            <button class="one-link one-history-open" onClick=${() => onShow(run)} title="Show this run's images">${run.prompt}</button>
            <span class="one-muted">${`${run.tiles.length} image${run.tiles.length === 1 ? "" : "s"} · ${run.model} · ${new Date(run.time).toLocaleString()}`}</span>
            <button class="one-button one-secondary" data-testid="delete-run" aria-label=${`Delete “${run.prompt}” from the history`} onClick=${() => onDelete(run)}>Delete</button>
          </li>`)}
      </ul>
    </section>`;
}
