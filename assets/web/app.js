// Entry module (loaded once in the document head): renders the browser-side views into the Reflex pages'
// placeholders as they appear. Reflex renders the page shell; what holds a person's data runs only here.
import { Chat } from "./chat.js";
import { Images } from "./images.js";
import { Balance } from "./account.js";
import { Packages } from "./packages.js";
import { WorkerPage } from "./worker-page.js";
import { Agents } from "./agents.js";
import { carryAnswerToVerify } from "./verify.js";
import { html, render, SignInPanel, ViewBoundary } from "./ui.js";
import * as core from "./core.js";

/** Operator sign-in: after SIWE, press the page's Reflex "Open dashboard" button, which hands the key to the server once. */
function OperatorSignIn() {
  return html`<${SignInPanel} title="Sign in with an operator wallet" only=${(choice) => !choice.dev || choice.operator}
    onSignedIn=${() => document.getElementById("operator-open")?.click()} />`;
}

const VIEWS = { chat: Chat, images: Images, balance: Balance, packages: Packages, signin: OperatorSignIn, worker: WorkerPage, agents: Agents };

// React attaches its fiber to a DOM node when it hydrates (or creates) it. Filling a placeholder before
// that would make hydration fail and React would rebuild the page, so wait for it.
const hydrated = (el) => Object.keys(el).some((k) => k.startsWith("__reactFiber$"));
const mounted = new Set();
let retry = null;

function mountAll() {
  for (const el of mounted) {
    if (el.isConnected) continue;
    render(null, el); // React left the page: unmounting stops the view's timers, sockets and workers
    mounted.delete(el);
  }
  for (const el of document.querySelectorAll("[data-one-view]:not([data-one-mounted])")) {
    const View = VIEWS[el.dataset.oneView];
    if (!View) continue;
    if (!hydrated(el)) {
      clearTimeout(retry);
      retry = setTimeout(mountAll, 30);
      continue;
    }
    el.dataset.oneMounted = "1";
    mounted.add(el);
    render(html`<${ViewBoundary}><${View} /><//>`, el);
  }
  updateChip();
}

/** The header names who is signed in and which lane this browser's requests run on, the same on every page. */
function updateChip() {
  const chip = document.getElementById("session-chip");
  if (!chip || !hydrated(chip)) return;
  const s = core.session();
  const d = core.dedicated();
  const who = (account) => `${account.slice(0, 6)}…${account.slice(-4)}`;
  const text = d && d.in_use ? `${who(d.account)} · Dedicated ${d.package}` : s ? `${who(s.account)} · Included` : "not signed in";
  if (chip.textContent !== text) chip.textContent = text;
}

// The skip link lands on the page's main control (the chat's message box) or else the page body.
document.addEventListener("click", (e) => {
  if (!e.target.closest || !e.target.closest("#skip-link")) return;
  e.preventDefault();
  const target = document.querySelector("#main [data-skip-target]") || document.getElementById("main");
  if (target) target.focus();
});

window.ONE = core; // for Reflex call_script (operator sign-in)
core.on("session", updateChip);
new MutationObserver(mountAll).observe(document.documentElement, { childList: true, subtree: true });
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mountAll);
else mountAll();
carryAnswerToVerify();
