// The /worker page: detect what this browser can serve, then (on Join) run the browser worker in a
// module Web Worker and show its jobs, billed work and reliability. Closing the tab leaves the network.
import { adapterReport } from "./gpu.js";
import { api, errorText, fill, h, micro, walletChoices } from "./core.js";

// What a model needs from the adapter (bytes / counts): MiniLM's largest tensor is its 30522x384 f32 vocabulary.
const BROWSER_MODELS = {
  "all-minilm-l6-v2": { maxStorageBufferBindingSize: 30522 * 384 * 4, maxComputeWorkgroupStorageSize: 2048, maxComputeInvocationsPerWorkgroup: 256 },
};

export function mountWorker(root) {
  const view = h("div", { class: "one-page" });
  root.replaceChildren(view);
  let worker = null;
  let stats = { state: "idle" };
  let pubkey = null;
  let payout = null;
  const statusLine = h("p", { id: "worker-status", class: "one-muted" }, "Not joined.");
  const numbers = h("div", { class: "one-cards", id: "worker-stats" });

  async function detect() {
    const report = await adapterReport();
    const { data } = await api("/one/catalog", { key: null });
    const servable = data.models.filter((m) => BROWSER_MODELS[m.id] && report.webgpu &&
      Object.entries(BROWSER_MODELS[m.id]).every(([limit, need]) => report.limits[limit] >= need));
    return { report, servable };
  }

  function renderStats() {
    const reliability = stats.served + stats.failed > 0 ? `${Math.floor((100 * stats.served) / (stats.served + stats.failed))}%` : "—";
    const billed = stats.billed ? Object.entries(stats.billed).map(([unit, amount]) => `${micro(amount)} ${unit === "usdc" ? "USDC" : "credits"}`).join(" + ") || "0" : "0";
    fill(numbers,
      h("div", { class: "one-card" }, h("p", { class: "one-muted" }, "Jobs served"), h("p", { class: "one-big", id: "jobs-served" }, String(stats.served || 0))),
      h("div", { class: "one-card" }, h("p", { class: "one-muted" }, "Work billed (earnings basis)"), h("p", { class: "one-big", id: "earnings" }, billed),
        h("p", { class: "one-muted" }, "Paid out at settlement, every six hours")),
      h("div", { class: "one-card" }, h("p", { class: "one-muted" }, "Reliability"), h("p", { class: "one-big", id: "reliability" }, reliability)));
  }

  async function refreshBilled() {
    if (!pubkey) return;
    try {
      const { data } = await api(`/one/workers/${pubkey}`, { key: null });
      stats = { ...stats, billed: data.billed, served: Math.max(stats.served || 0, data.served || 0), failed: data.failed ?? stats.failed };
      renderStats();
    } catch { /* offline for a moment */ }
  }

  function join() {
    const origin = location.origin;
    const coordinator = origin.replace(/^http/, "ws") + "/worker/ws";
    worker = new Worker("/web/browser-worker.js", { type: "module" });
    worker.onmessage = (e) => {
      const msg = e.data;
      if (msg.pubkey) pubkey = msg.pubkey;
      if (msg.worker_id) pubkey = msg.worker_id;
      stats = { ...stats, ...msg };
      statusLine.textContent = {
        loading: `Loading: ${msg.step || ""}…`,
        joined: `Serving as worker ${pubkey ? pubkey.slice(0, 16) : ""}… — keep this tab open.`,
        reconnecting: `Reconnecting… ${msg.error || ""}`,
        refused: `Refused by the coordinator: ${msg.reason}`,
        failed: `The worker stopped: ${msg.error}`,
        left: "Left the network.",
      }[msg.state] || statusLine.textContent;
      statusLine.dataset.state = msg.state || "";
      if (pubkey) statusLine.dataset.worker = pubkey;
      renderStats();
    };
    worker.postMessage({ cmd: "start", coordinator, origin, payout, adapter: stats.adapter || "" });
  }

  function leave() {
    if (!worker) return;
    worker.postMessage({ cmd: "leave" });
    setTimeout(() => worker && worker.terminate(), 500);
  }
  window.addEventListener("pagehide", leave);

  detect().then(({ report, servable }) => {
    stats.adapter = report.adapter || "";
    const joinButton = h("button", { class: "one-button", id: "join-button", disabled: !servable.length || !payout }, "Join the network");
    const walletRow = h("div", { class: "one-row", id: "payout-row" }, h("span", { class: "one-muted" }, "Payout address: connect a wallet"));
    walletChoices().then((choices) => {
      for (const choice of choices) {
        walletRow.append(h("button", { class: "one-button one-secondary", "data-testid": choice.dev ? "dev-wallet" : "browser-wallet", onclick: async () => {
          try {
            [payout] = await choice.provider().request({ method: "eth_requestAccounts" });
            walletRow.replaceChildren(h("span", { id: "payout-address", class: "one-mono" }, `Payout address: ${payout}`));
            joinButton.disabled = !servable.length;
          } catch (err) {
            walletRow.append(h("span", { class: "one-error" }, errorText(err)));
          }
        } }, choice.label));
      }
    });
    joinButton.addEventListener("click", () => {
      joinButton.disabled = true;
      join();
    });
    fill(view,
      h("h2", {}, "Earn by keeping this tab open"),
      h("p", { class: "one-muted" }, "Your browser serves small models on its GPU (WebGPU) for the network, signs every job with a key that never leaves it, and is paid from the receipts like any other worker."),
      report.webgpu
        ? h("div", { class: "one-card", id: "capabilities" }, h("h3", {}, "This browser"), h("p", {}, `GPU adapter: ${report.adapter}`),
            h("p", { class: "one-muted" }, `max storage buffer ${Math.round(report.limits.maxStorageBufferBindingSize / 2 ** 20)} MiB · workgroup memory ${report.limits.maxComputeWorkgroupStorageSize} B`),
            servable.length ? h("p", { id: "servable" }, "Can serve: ", servable.map((m) => m.id).join(", ")) : h("p", { class: "one-error", id: "servable" }, "No catalog model fits this GPU's limits."))
        : h("div", { class: "one-card one-upsell", id: "capabilities" }, h("h3", {}, "WebGPU is not available here"),
            h("p", { id: "no-webgpu" }, `${report.reason} This tab cannot serve models. Use a recent Chrome, Edge or Firefox with WebGPU enabled.`)),
      walletRow,
      h("div", { class: "one-row" }, joinButton, h("button", { class: "one-button one-secondary", id: "leave-button", onclick: leave }, "Leave")),
      statusLine, numbers);
    renderStats();
  }).catch((err) => fill(view, h("p", { class: "one-error" }, errorText(err))));

  const poll = setInterval(() => {
    if (!root.isConnected) { clearInterval(poll); leave(); return; }
    refreshBilled();
  }, 3000);
}
