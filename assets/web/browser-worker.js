// Module Web Worker: Pyodide runs browser_worker/ (our wheel) against this host object, which gives it
// the WebSocket, the Ed25519 identity (WebCrypto, non-extractable, IndexedDB) and the WebGPU kernels.
import { loadPyodide } from "/pyodide/pyodide.mjs";
import { Gpu } from "./gpu.js";

const WHEEL = "/pyodide/one_browser_worker-0.1.0-py3-none-any.whl";
const toHex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
const fromHex = (hex) => Uint8Array.from(hex.match(/../g) || [], (h) => parseInt(h, 16));

function idb() {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open("one-browser-worker", 1);
    open.onupgradeneeded = () => open.result.createObjectStore("keys");
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error);
  });
}

function idbDo(db, mode, fn) {
  return new Promise((resolve, reject) => {
    const req = fn(db.transaction("keys", mode).objectStore("keys"));
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

/** This browser's worker key: generated once, private half non-extractable, kept in IndexedDB. */
async function identity() {
  const db = await idb();
  let pair = await idbDo(db, "readonly", (s) => s.get("ed25519"));
  if (!pair) {
    pair = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
    await idbDo(db, "readwrite", (s) => s.put(pair, "ed25519"));
  }
  return { pair, pubkey: toHex(await crypto.subtle.exportKey("raw", pair.publicKey)) };
}

const frames = [];
const waiters = [];
let socket = null;
const host = { leaving: false };

function push(frame) {
  if (waiters.length) waiters.shift()(frame);
  else frames.push(frame);
}

async function start({ coordinator, payout, origin, adapter, batchTokens }) {
  postMessage({ state: "loading", step: "python" });
  const pyodide = await loadPyodide({ indexURL: new URL("/pyodide/", origin).href });
  pyodide.unpackArchive(await (await fetch(new URL(WHEEL, origin))).arrayBuffer(), "wheel");
  postMessage({ state: "loading", step: "gpu" });
  const gpu = await Gpu.open();
  const { pair, pubkey } = await identity();
  postMessage({ state: "loading", step: "weights", pubkey });
  Object.assign(host, {
    pubkey, payout, adapter, gpu,
    batchTokens: batchTokens == null ? "" : String(batchTokens),
    weightsUrl: new URL("/one/weights/all-minilm-l6-v2", origin).href,
    sign: async (hex) => toHex(await crypto.subtle.sign("Ed25519", pair.privateKey, fromHex(hex))),
    connect: () => new Promise((resolve, reject) => {
      frames.length = 0;
      socket = new WebSocket(coordinator);
      socket.onopen = () => resolve();
      socket.onerror = () => reject(new Error(`cannot reach ${coordinator}`));
      socket.onmessage = (e) => push(e.data);
      socket.onclose = () => push(null);
    }),
    nextFrame: () => (frames.length ? Promise.resolve(frames.shift()) : new Promise((r) => waiters.push(r))),
    send: (text) => socket && socket.readyState === WebSocket.OPEN && socket.send(text),
    report: (json) => postMessage(JSON.parse(json)),
  });
  pyodide.registerJsModule("one_host", host);
  await pyodide.runPythonAsync("from browser_worker.worker import main\nawait main()");
}

/** Leaving: close the socket cleanly so the coordinator deregisters this worker at once. */
function leave() {
  host.leaving = true;
  if (socket) socket.close(1000, "contributor left");
}

onmessage = (e) => {
  const { cmd } = e.data;
  const run = cmd === "start" ? start(e.data) : cmd === "leave" ? Promise.resolve(leave()) : null;
  if (run) run.catch((err) => postMessage({ state: "failed", error: String(err && err.message ? err.message : err) }));
};
