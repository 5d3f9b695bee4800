// Images: one prompt, a grid of 4–16 candidates generated in parallel (one request per tile, so the
// scheduler spreads them over every worker serving the model); open or download any of them.
import { api, errorText, firstOnline, micro } from "./core.js";
import { html, ReceiptBadge, useEffect, useLoad, useRef, useState } from "./ui.js";

const COUNTS = [4, 6, 8, 12, 16];

async function imageModels() {
  const { data } = await api("/one/catalog", { key: null });
  return data.models.filter((m) => m.tasks.includes("image"));
}

export function Images() {
  const catalog = useLoad(imageModels, []);
  const [picked, setPicked] = useState("");
  const [count, setCount] = useState(String(COUNTS[0]));
  const [prompt, setPrompt] = useState("");
  const [cost, setCost] = useState("");
  const [status, setStatus] = useState("");
  const [tiles, setTiles] = useState([]); // { state: "loading" | "ready" | "failed", url, receipt, error }
  const [busy, setBusy] = useState(false);
  const urls = useRef([]); // object URLs of the shown images, freed when replaced or when the page goes

  const models = catalog.data || [];
  const model = picked || (firstOnline(models) || {}).id || "";

  useEffect(() => () => urls.current.forEach((u) => URL.revokeObjectURL(u)), []);
  useEffect(() => {
    if (!model) return;
    let current = true;
    api("/one/quote", { method: "POST", body: { model, task: "image", body: { n: Number(count) } } })
      .then(({ data }) => current && setCost(`at most ${micro(data.max_amount)} credits for ${count}`))
      .catch(() => current && setCost(""));
    return () => (current = false);
  }, [model, count]);

  async function candidate(i, text) {
    const show = (tile) => setTiles((all) => all.map((t, j) => (j === i ? tile : t)));
    try {
      const { data } = await api("/v1/images/generations", { method: "POST", body: { model, prompt: text, n: 1, response_format: "b64_json" } });
      const bytes = Uint8Array.from(atob(data.data[0].b64_json), (c) => c.charCodeAt(0));
      const url = URL.createObjectURL(new Blob([bytes], { type: "image/png" }));
      urls.current.push(url);
      show({ state: "ready", url, receipt: data.receipt });
      return true;
    } catch (err) {
      show({ state: "failed", error: errorText(err) });
      return false;
    }
  }

  async function generate(e) {
    e.preventDefault();
    const text = prompt.trim();
    if (!text) return setStatus("Describe the image first.");
    urls.current.splice(0).forEach((u) => URL.revokeObjectURL(u));
    const n = Number(count);
    setTiles(Array.from({ length: n }, () => ({ state: "loading" })));
    setBusy(true);
    setStatus(`Generating ${n} candidates in parallel…`);
    const started = performance.now();
    const results = await Promise.all(Array.from({ length: n }, (_, i) => candidate(i, text)));
    const ok = results.filter(Boolean).length;
    setStatus(`${ok} of ${n} ready in ${((performance.now() - started) / 1000).toFixed(1)} s.` + (ok < n ? " Failed tiles were not charged." : ""));
    setBusy(false);
  }

  return html`
    <div class="one-page">
      <form class="one-card" onSubmit=${generate}>
        <textarea id="image-prompt" class="one-textarea" rows="2" placeholder="A lighthouse on a cliff at dusk, oil painting"
          value=${prompt} onInput=${(e) => setPrompt(e.target.value)} />
        <div class="one-row">
          <select id="image-model" class="one-select" value=${model} onChange=${(e) => setPicked(e.target.value)}>
            ${models.map((m) => html`<option key=${m.id} value=${m.id}>${`${m.available ? "●" : "○"} ${m.id}`}</option>`)}
          </select>
          <select id="image-count" class="one-select" value=${count} onChange=${(e) => setCount(e.target.value)}>
            ${COUNTS.map((n) => html`<option key=${n} value=${String(n)}>${`${n} images`}</option>`)}
          </select>
          <span class="one-muted" id="image-cost">${cost}</span>
          <span class="one-spacer" />
          <button type="submit" class="one-button" id="generate-button" disabled=${busy}>Generate</button>
        </div>
      </form>
      <p class="one-muted" id="image-status">${catalog.error ? `catalog unavailable: ${errorText(catalog.error)}` : status}</p>
      <div class="one-grid" id="image-grid">${tiles.map((tile, i) => html`<${Tile} key=${i} index=${i} tile=${tile} />`)}</div>
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
  const { url, receipt } = tile;
  return html`
    <figure class="one-tile" data-index=${index}>
      <img src=${url} alt=${`candidate ${index + 1}`} class="one-image" />
      <figcaption class="one-row">
        <a href=${url} target="_blank" rel="noopener" class="one-link" data-testid="open-image">Open</a>
        <a href=${url} download=${`one-image-${index + 1}.png`} class="one-link" data-testid="download-image">Download</a>
        <span class="one-spacer" />
        ${receipt && html`<${ReceiptBadge} receipt=${receipt} />`}
      </figcaption>
    </figure>`;
}
