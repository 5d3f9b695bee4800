// Entry module (loaded once in the document head): mounts the browser-side views into the Reflex pages
// as they appear. Reflex renders the page shell; what holds a person's data runs only here.
import { mountChat } from "./chat.js";
import { mountImages } from "./images.js";
import { mountBalance, mountPackages } from "./account.js";
import { mountWorker } from "./worker-page.js";
import { mountAgents } from "./agents.js";
import * as core from "./core.js";

// Operator sign-in: after SIWE, press the page's Reflex "Open dashboard" button, which hands the key to the server once.
const mountSignIn = (el) => el.replaceChildren(core.signInPanel(() => document.getElementById("operator-open")?.click()));

const VIEWS = { chat: mountChat, images: mountImages, balance: mountBalance, packages: mountPackages, signin: mountSignIn, worker: mountWorker, agents: mountAgents };

// React attaches its fiber to a DOM node when it hydrates (or creates) it. Filling a placeholder before
// that would make hydration fail and React would rebuild the page, so wait for it.
const hydrated = (el) => Object.keys(el).some((k) => k.startsWith("__reactFiber$"));
let retry = null;

function mountAll() {
  for (const el of document.querySelectorAll("[data-one-view]:not([data-one-mounted])")) {
    const mount = VIEWS[el.dataset.oneView];
    if (!mount) continue;
    if (!hydrated(el)) {
      clearTimeout(retry);
      retry = setTimeout(mountAll, 30);
      continue;
    }
    el.dataset.oneMounted = "1";
    try {
      mount(el);
    } catch (err) {
      el.textContent = `This view failed to start: ${err.message}`;
    }
  }
  updateChip();
}

function updateChip() {
  const chip = document.getElementById("session-chip");
  if (!chip || !hydrated(chip)) return;
  const s = core.session();
  const d = core.dedicated();
  const text = d && d.in_use ? `${d.package} · ${d.account.slice(0, 6)}…` : s ? `${s.account.slice(0, 6)}…${s.account.slice(-4)}` : "not signed in";
  if (chip.textContent !== text) chip.textContent = text;
}

window.ONE = core; // for Reflex call_script (operator sign-in)
core.on("session", updateChip);
new MutationObserver(mountAll).observe(document.documentElement, { childList: true, subtree: true });
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mountAll);
else mountAll();
