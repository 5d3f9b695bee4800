// The /worker page: detect what this browser can serve, then (on Join) run the browser worker in a
// module Web Worker and show its jobs, billed work and reliability. Closing the tab leaves the network.
import { adapterReport } from "./gpu.js";
import { api, errorText, money, walletChoices } from "./core.js";
import { html, useEffect, useInterval, useLoad, useReducer, useRef, useSession, useState, WalletButtons } from "./ui.js";

// What a model needs from the adapter (bytes / counts): MiniLM's largest tensor is its 30522x384 f32 vocabulary.
const BROWSER_MODELS = {
  "all-minilm-l6-v2": { maxStorageBufferBindingSize: 30522 * 384 * 4, maxComputeWorkgroupStorageSize: 2048, maxComputeInvocationsPerWorkgroup: 256 },
};

// The status line for each state the browser worker reports (browser_worker/worker.py).
const STATUS = {
  loading: (msg) => `Loading: ${msg.step || ""}…`,
  joined: (msg, key) => `Serving as worker ${key ? key.slice(0, 16) : ""}… — keep this tab open.`,
  reconnecting: (msg) => `Reconnecting… ${msg.error || ""}`,
  refused: (msg) => `Refused by the coordinator: ${msg.reason}`,
  failed: (msg) => `The worker stopped: ${msg.error}`,
  left: () => "Left the network.",
};

async function detect() {
  const report = await adapterReport();
  const [{ data }, { data: network }] = await Promise.all([api("/one/catalog", { key: null }), api("/one/packages", { key: null })]);
  const servable = data.models.filter((m) => BROWSER_MODELS[m.id] && report.webgpu &&
    Object.entries(BROWSER_MODELS[m.id]).every(([limit, need]) => report.limits[limit] >= need));
  return { report, servable, terms: { feeBps: BigInt(network.settlement_fee_bps), epochS: network.settlement_epoch_s } };
}

function short(address) {
  return `${address.slice(0, 6)}…${address.slice(-4)}`;
}

/** 1000 basis points -> "10", 250 -> "2.5": integers only. */
function percent(bps) {
  const frac = (bps % 100n).toString().padStart(2, "0").replace(/0+$/, "");
  return `${bps / 100n}${frac ? "." + frac : ""}`;
}

/** The worker's share of what it billed, in micro-USDC, as settlement computes it: credits count 1:1, and the
 * network keeps floor(gross * fee_bps / 10000). An estimate: settlement pays what accounts were actually debited. */
export function estimatedPay(billed, feeBps) {
  const gross = Object.values(billed).reduce((sum, amount) => sum + BigInt(amount), 0n);
  return gross - (gross * feeBps) / 10000n;
}

/** Folds one report of the browser worker into what the page shows: its numbers, key and status line. */
function nextRun(run, msg) {
  const stats = { ...run.stats, ...msg };
  const key = stats.worker_id || stats.pubkey || null;
  return { stats, key, state: msg.state || "", text: STATUS[msg.state] ? STATUS[msg.state](msg, key) : run.text };
}

export function WorkerPage() {
  const detected = useLoad(detect, []);
  const wallets = useLoad(walletChoices, []);
  const [payout, setPayout] = useState(null);
  const [walletError, setWalletError] = useState(null);
  const [joined, setJoined] = useState(false);
  const [left, setLeft] = useState(false);
  const { session } = useSession();
  const [run, report] = useReducer(nextRun, { stats: {}, key: null, state: null, text: "Not joined." });
  const [ledger, setLedger] = useState(null); // what the coordinator counted for this worker (billed, served, failed)
  const worker = useRef(null);

  function join(adapter) {
    setJoined(true);
    const origin = location.origin;
    worker.current = new Worker("/web/browser-worker.js", { type: "module" });
    worker.current.onmessage = (e) => report(e.data);
    // ?batch_tokens=N: tokens per GPU pass (0: one sentence per pass), for bench/browser_worker.py's before/after.
    const batchTokens = new URLSearchParams(location.search).get("batch_tokens");
    worker.current.postMessage({ cmd: "start", coordinator: origin.replace(/^http/, "ws") + "/worker/ws", origin, payout, adapter, batchTokens });
  }

  function leave() {
    const running = worker.current;
    if (!running) return;
    setLeft(true);
    running.postMessage({ cmd: "leave" });
    setTimeout(() => running.terminate(), 500);
  }

  useEffect(() => {
    window.addEventListener("pagehide", leave);
    return () => {
      window.removeEventListener("pagehide", leave);
      leave();
    };
  }, []);

  useInterval(async () => {
    if (!run.key) return;
    try {
      setLedger((await api(`/one/workers/${run.key}`, { key: null })).data);
    } catch { /* offline for a moment */ }
  }, 3000);

  async function choosePayout(choice) {
    try {
      const [address] = await choice.provider().request({ method: "eth_requestAccounts" });
      setPayout(address);
    } catch (err) {
      setWalletError(errorText(err));
    }
  }

  if (detected.error) return html`<div class="one-page"><p class="one-error">${errorText(detected.error)}</p></div>`;
  if (!detected.data) return html`<div class="one-page" />`;
  const { report: adapter, servable, terms } = detected.data;
  return html`
    <div class="one-page">
      <h2>Earn by keeping this tab open</h2>
      <p class="one-muted">Your browser serves small models on its GPU (WebGPU) for the network, signs every job with a key that never leaves it, and is paid from the receipts like any other worker.</p>
      <${Capabilities} report=${adapter} servable=${servable} />
      <div class="one-row" id="payout-row">
        ${payout
          ? html`<span id="payout-address" class="one-mono">${`Payout address: ${payout}`}</span>`
          : html`
            <span class="one-muted">Payout address: connect a wallet</span>
            ${session && html`<button class="one-button" id="use-signed-in" onClick=${() => setPayout(session.account)}>${`Use my signed-in wallet ${short(session.account)}`}</button>`}
            <${WalletButtons} choices=${wallets.data} onPick=${choosePayout} secondary />
            ${walletError && html`<span class="one-error">${walletError}</span>`}`}
      </div>
      ${payout && session && payout.toLowerCase() !== session.account.toLowerCase() && html`
        <div class="one-row one-muted" id="payout-differs">
          <span>${`Payouts go to ${short(payout)}, not your signed-in wallet ${short(session.account)}.`}</span>
          ${!joined && html`<button class="one-button one-secondary" id="use-signed-in" onClick=${() => setPayout(session.account)}>Use my signed-in wallet</button>`}
        </div>`}
      <div class="one-row">
        <button class="one-button" id="join-button" disabled=${!servable.length || !payout || joined} onClick=${() => join(adapter.adapter || "")}>Join the network</button>
        <button class="one-button one-secondary" id="leave-button" disabled=${!joined || left} onClick=${leave}>Leave</button>
      </div>
      <p id="worker-status" class="one-muted" data-state=${run.state} data-worker=${run.key}>${run.text}</p>
      <${WorkerStats} stats=${run.stats} ledger=${ledger} terms=${terms} />
    </div>`;
}

function Capabilities({ report, servable }) {
  if (!report.webgpu) {
    return html`
      <div class="one-card one-upsell" id="capabilities">
        <h3>WebGPU is not available here</h3>
        <p id="no-webgpu">${`${report.reason} This tab cannot serve models. Use a recent Chrome, Edge or Firefox with WebGPU enabled.`}</p>
      </div>`;
  }
  const mib = Math.round(report.limits.maxStorageBufferBindingSize / 2 ** 20);
  const emulator = /swiftshader/i.test(report.adapter) ? "SwiftShader" : /llvmpipe|lavapipe|softpipe/i.test(report.adapter) ? "llvmpipe" : "a fallback adapter";
  return html`
    <div class="one-card" id="capabilities">
      <h3>This browser</h3>
      <p>${`GPU adapter: ${report.adapter}`}</p>
      ${report.software && html`
        <div class="one-card one-upsell" id="software-gpu" role="note">
          <p>${`This is a software-emulated GPU (${emulator}): it works but is slow; you will earn little. A browser with a hardware GPU earns far more.`}</p>
        </div>`}
      <p class="one-muted">${`max storage buffer ${mib} MiB · workgroup memory ${report.limits.maxComputeWorkgroupStorageSize} B`}</p>
      ${servable.length
        ? html`<p id="servable">${`Can serve: ${servable.map((m) => m.id).join(", ")}`}</p>`
        : html`<p class="one-error" id="servable">No catalog model fits this GPU's limits.</p>`}
    </div>`;
}

/** Jobs served and reliability (the worker's own count or the coordinator's, whichever saw more), billed work with
 * its unit, and the share of it the next settlement should pay (after the network's fee). */
function WorkerStats({ stats, ledger, terms }) {
  const served = Math.max(stats.served || 0, (ledger && ledger.served) || 0);
  const failed = (ledger && ledger.failed) ?? stats.failed ?? 0;
  const reliability = served + failed > 0 ? `${Math.floor((100 * served) / (served + failed))}%` : "—";
  const billedByUnit = (ledger && ledger.billed) || {};
  const billed = Object.entries(billedByUnit).map(([unit, amount]) => money(amount, unit)).join(" + ") || money(0, "credit");
  const hours = Math.round(terms.epochS / 3600);
  return html`
    <div class="one-cards" id="worker-stats">
      <div class="one-card"><p class="one-muted">Jobs served</p><p class="one-big" id="jobs-served">${String(served)}</p></div>
      <div class="one-card">
        <p class="one-muted">Work billed (earnings basis)</p><p class="one-big" id="earnings">${billed}</p>
        <p id="earnings-estimate">${`≈ ${money(estimatedPay(billedByUnit, terms.feeBps), "usdc")} at the next settlement (after the ${percent(terms.feeBps)}% network fee)`}</p>
        <p class="one-muted">${`Settlement pays in USDC every ${hours >= 1 ? `${hours} hour${hours === 1 ? "" : "s"}` : `${terms.epochS} seconds`}; credits count 1:1.`}</p>
      </div>
      <div class="one-card"><p class="one-muted">Reliability</p><p class="one-big" id="reliability">${reliability}</p></div>
    </div>`;
}
