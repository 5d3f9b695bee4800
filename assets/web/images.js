// Images: one prompt, a grid of 4–16 candidates generated in parallel (one request per tile, so the
// scheduler spreads them over every worker serving the model); open or download any of them.
import { api, ApiError, errorText, h, micro, unitName } from "./core.js";

export function mountImages(root) {
  const prompt = h("textarea", { id: "image-prompt", class: "one-textarea", rows: 2, placeholder: "A lighthouse on a cliff at dusk, oil painting" });
  const count = h("select", { id: "image-count", class: "one-select" }, [4, 6, 8, 12, 16].map((n) => h("option", { value: String(n) }, `${n} images`)));
  const modelSelect = h("select", { id: "image-model", class: "one-select" });
  const cost = h("span", { class: "one-muted", id: "image-cost" });
  const go = h("button", { type: "submit", class: "one-button", id: "generate-button" }, "Generate");
  const grid = h("div", { class: "one-grid", id: "image-grid" });
  const status = h("p", { class: "one-muted", id: "image-status" });
  const urls = [];

  root.replaceChildren(h("div", { class: "one-page" },
    h("form", { class: "one-card", onsubmit: (e) => { e.preventDefault(); generate(); } },
      prompt, h("div", { class: "one-row" }, modelSelect, count, cost, h("span", { class: "one-spacer" }), go)),
    status, grid));

  async function loadModels() {
    const { data } = await api("/one/catalog", { key: null });
    const models = data.models.filter((m) => m.tasks.includes("image"));
    modelSelect.replaceChildren(...models.map((m) => h("option", { value: m.id }, `${m.available ? "●" : "○"} ${m.id}`)));
    quote();
  }

  async function quote() {
    if (!modelSelect.value) return;
    try {
      const { data } = await api("/one/quote", { method: "POST", body: { model: modelSelect.value, task: "image", body: { n: Number(count.value) } } });
      cost.textContent = `at most ${micro(data.max_amount)} credits for ${count.value}`;
    } catch {
      cost.textContent = "";
    }
  }

  function tile(i) {
    return h("figure", { class: "one-tile one-loading", dataset: { index: String(i) } }, h("div", { class: "one-spinner" }), h("figcaption", { class: "one-muted" }, `#${i + 1} generating…`));
  }

  async function one(i, text, model, tileEl) {
    try {
      const { data } = await api("/v1/images/generations", { method: "POST", body: { model, prompt: text, n: 1, response_format: "b64_json" } });
      const bytes = Uint8Array.from(atob(data.data[0].b64_json), (c) => c.charCodeAt(0));
      const url = URL.createObjectURL(new Blob([bytes], { type: "image/png" }));
      urls.push(url);
      tileEl.classList.remove("one-loading");
      tileEl.replaceChildren(
        h("img", { src: url, alt: `candidate ${i + 1}`, class: "one-image" }),
        h("figcaption", { class: "one-row" },
          h("a", { href: url, target: "_blank", rel: "noopener", class: "one-link", "data-testid": "open-image" }, "Open"),
          h("a", { href: url, download: `one-image-${i + 1}.png`, class: "one-link", "data-testid": "download-image" }, "Download"),
          h("span", { class: "one-spacer" }),
          data.receipt ? h("a", { href: `/verify?hash=${data.receipt.hash}`, class: "one-badge", "data-testid": "receipt-badge" }, `✓ ${micro(data.receipt.charge.amount)} ${unitName(data.receipt.charge.unit)}`) : null));
      return true;
    } catch (err) {
      tileEl.classList.remove("one-loading");
      tileEl.classList.add("one-failed");
      tileEl.replaceChildren(h("p", { class: "one-error" }, errorText(err)));
      return err instanceof ApiError ? err : false;
    }
  }

  async function generate() {
    const text = prompt.value.trim();
    if (!text) {
      status.textContent = "Describe the image first.";
      return;
    }
    urls.splice(0).forEach((u) => URL.revokeObjectURL(u));
    const n = Number(count.value);
    const tiles = Array.from({ length: n }, (_, i) => tile(i));
    grid.replaceChildren(...tiles);
    go.disabled = true;
    status.textContent = `Generating ${n} candidates in parallel…`;
    const started = performance.now();
    const results = await Promise.all(tiles.map((t, i) => one(i, text, modelSelect.value, t)));
    const ok = results.filter((r) => r === true).length;
    status.textContent = `${ok} of ${n} ready in ${((performance.now() - started) / 1000).toFixed(1)} s.` + (ok < n ? " Failed tiles were not charged." : "");
    go.disabled = false;
  }

  count.addEventListener("change", quote);
  modelSelect.addEventListener("change", quote);
  loadModels().catch((err) => (status.textContent = `catalog unavailable: ${errorText(err)}`));
}
