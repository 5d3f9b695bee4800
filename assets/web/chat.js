// Chat: conversations kept in this browser only; answers streamed from /v1/chat/completions.
import { marked } from "/vendor/marked.esm.js";
import DOMPurify from "/vendor/purify.es.mjs";
import { api, ApiError, activeKey, duration, emit, errorText, h, micro, on, rateText, readSSE, store, unitName } from "./core.js";

export const TIMERS = [["off", 0], ["10 s", 10], ["1 min", 60], ["5 min", 300], ["1 hour", 3600], ["1 day", 86400]];
const MAX_TOKENS = 256;
const MAX_IMAGE_BYTES = 4 * 1024 * 1024;

function uid() {
  return crypto.randomUUID().replace(/-/g, "").slice(0, 16);
}

/** A message's OpenAI `content`: the text, or text + image parts when an image is attached. */
function messageContent(text, image) {
  return image ? [{ type: "text", text }, { type: "image_url", image_url: { url: image } }] : text;
}

function markdown(text) {
  return DOMPurify.sanitize(marked.parse(text || "", { gfm: true, breaks: true }));
}

/** Where conversations live: localStorage, or (flash mode) this tab's memory only. */
class Conversations {
  constructor() {
    this.flash = false;
    this.memory = [];
  }
  all() {
    return this.flash ? this.memory : store.get("conversations", []);
  }
  save(list) {
    if (this.flash) this.memory = list;
    else store.set("conversations", list);
  }
  update(id, fn) {
    const list = this.all();
    const conv = list.find((c) => c.id === id);
    if (conv) {
      fn(conv);
      conv.updated = Date.now();
      this.save(list);
    }
    return conv;
  }
  /** Drop messages whose timer ran out; true when anything was deleted. */
  purgeExpired(now = Date.now()) {
    const list = this.all();
    let changed = false;
    for (const conv of list) {
      const kept = conv.messages.filter((m) => !m.expires_at || m.expires_at > now);
      if (kept.length !== conv.messages.length) {
        conv.messages = kept;
        changed = true;
      }
    }
    if (changed) this.save(list);
    return changed;
  }
}

export function mountChat(root) {
  const convs = new Conversations();
  let catalog = [];
  let currentId = null;
  let attachment = null; // data URL
  let controller = null; // AbortController of the streaming answer
  let quoteTimer = null;

  // ---- layout ----
  const list = h("ul", { class: "one-conv-list", id: "conversation-list" });
  const flashToggle = h("input", { type: "checkbox", id: "flash-toggle" });
  const modelSelect = h("select", { id: "model-select", class: "one-select" });
  const modelInfo = h("span", { class: "one-muted", id: "model-info" });
  const convTimer = h("select", { id: "conversation-timer", class: "one-select", title: "Delete every new message of this conversation after…" },
    TIMERS.map(([label, s]) => h("option", { value: String(s) }, label)));
  const messages = h("div", { class: "one-messages", id: "messages" });
  const banner = h("div", { class: "one-flash-banner", id: "flash-banner", hidden: true },
    "Flash mode: this conversation lives in this tab's memory only. Close the tab and it is gone; nothing is written anywhere.");
  const upsell = h("div", { class: "one-card one-upsell", id: "upsell", hidden: true });
  const draft = h("textarea", { id: "chat-input", class: "one-textarea", rows: 3, placeholder: "Message…  (Enter sends, Shift+Enter for a new line)" });
  const fileInput = h("input", { type: "file", accept: "image/*", id: "attach-input", hidden: true });
  const attachButton = h("button", { type: "button", class: "one-button one-secondary", id: "attach-button", title: "Attach an image", onclick: () => fileInput.click() }, "Attach image");
  const attachPreview = h("div", { class: "one-attachment", id: "attachment", hidden: true });
  const msgTimer = h("select", { id: "message-timer", class: "one-select", title: "Delete this message after…" },
    h("option", { value: "" }, "timer: conversation"), TIMERS.map(([label, s]) => h("option", { value: String(s) }, `timer: ${label}`)));
  const cost = h("span", { class: "one-muted", id: "cost" });
  const balance = h("span", { class: "one-muted", id: "chat-balance" });
  const send = h("button", { type: "submit", class: "one-button", id: "send-button" }, "Send");
  const stop = h("button", { type: "button", class: "one-button one-danger", id: "stop-button", hidden: true, onclick: () => controller && controller.abort() }, "Stop");

  root.replaceChildren(
    h("div", { class: "one-chat" },
      h("aside", { class: "one-sidebar" },
        h("button", { class: "one-button", id: "new-chat", onclick: () => newConversation() }, "+ New chat"),
        h("label", { class: "one-flash" }, flashToggle, " Flash mode"),
        list),
      h("section", { class: "one-main" },
        h("div", { class: "one-toolbar" }, modelSelect, modelInfo, h("span", { class: "one-spacer" }), h("label", { class: "one-muted" }, "Auto-delete ", convTimer)),
        banner, messages, upsell,
        h("form", { class: "one-composer", id: "composer", onsubmit: (e) => { e.preventDefault(); sendMessage(); } },
          attachPreview, draft,
          h("div", { class: "one-row" }, attachButton, fileInput, msgTimer, cost, h("span", { class: "one-spacer" }), balance, stop, send)))));

  // ---- conversations ----
  function current() {
    return convs.all().find((c) => c.id === currentId) || null;
  }

  function newConversation() {
    const list = convs.all();
    const model = modelSelect.value || (catalog.find((m) => m.tasks.includes("chat")) || {}).id || "tiny-chat";
    const conv = { id: uid(), title: "New chat", model, timer_s: 0, messages: [], updated: Date.now() };
    convs.save([conv, ...list]);
    currentId = conv.id;
    render();
    draft.focus();
  }

  function renderList() {
    list.replaceChildren(...convs.all().sort((a, b) => b.updated - a.updated).map((c) =>
      h("li", { class: c.id === currentId ? "active" : "", dataset: { id: c.id } },
        h("button", { class: "one-conv", onclick: () => { currentId = c.id; render(); } }, c.title || "New chat"),
        h("button", { class: "one-icon", title: "Delete conversation", onclick: () => { convs.save(convs.all().filter((x) => x.id !== c.id)); if (currentId === c.id) currentId = null; render(); } }, "×"))));
  }

  function messageView(m) {
    const body = h("div", { class: "one-body" });
    if (m.role === "assistant") body.innerHTML = markdown(m.content);
    else body.textContent = m.content;
    const meta = h("div", { class: "one-meta" });
    if (m.image) body.prepend(h("img", { src: m.image, class: "one-thumb", alt: "attached image" }));
    if (m.expires_at) meta.append(h("span", { class: "one-timer", dataset: { expires: String(m.expires_at) } }, "⏱ " + duration((m.expires_at - Date.now()) / 1000)));
    if (m.receipt) meta.append(h("a", { class: "one-badge", href: `/verify?hash=${m.receipt}`, title: "Signed receipt: open to verify", "data-testid": "receipt-badge" }, `✓ receipt ${m.receipt.slice(0, 10)}`));
    if (m.charge) meta.append(h("span", { class: "one-muted" }, `${micro(m.charge.amount)} ${unitName(m.charge.unit)}`));
    if (m.stopped) meta.append(h("span", { class: "one-muted" }, "stopped — not charged"));
    if (m.error) meta.append(h("span", { class: "one-error" }, m.error));
    return h("div", { class: `one-msg one-${m.role}`, dataset: { id: m.id } }, body, meta);
  }

  function render() {
    let conv = current();
    if (!conv) {
      const all = convs.all();
      conv = all[0] || null;
      currentId = conv ? conv.id : null;
    }
    renderList();
    banner.hidden = !convs.flash;
    if (conv) {
      if (catalog.length && conv.model !== modelSelect.value) modelSelect.value = conv.model;
      convTimer.value = String(conv.timer_s || 0);
    }
    messages.replaceChildren(...(conv ? conv.messages.map(messageView) : [h("p", { class: "one-empty" }, "Ask anything. Every answer comes with a signed receipt you can verify.")]));
    messages.scrollTop = messages.scrollHeight;
    showModelInfo();
    scheduleQuote();
  }

  // ---- models, cost, balance ----
  async function loadCatalog() {
    try {
      const { data } = await api("/one/catalog", { key: null });
      catalog = data.models.filter((m) => m.tasks.includes("chat"));
      const chosen = modelSelect.value || (current() && current().model);
      modelSelect.replaceChildren(...catalog.map((m) => h("option", { value: m.id }, `${m.available ? "●" : "○"} ${m.id}`)));
      if (chosen && catalog.some((m) => m.id === chosen)) modelSelect.value = chosen;
      showModelInfo();
    } catch (err) {
      modelInfo.textContent = `catalog unavailable: ${errorText(err)}`;
    }
  }

  function showModelInfo() {
    const m = catalog.find((x) => x.id === modelSelect.value);
    if (!m) return;
    modelInfo.textContent = `${rateText(m)} · ${m.context_length} tokens context · ${m.available ? `online (${m.free_slots} free)` : "offline"}${m.tasks.includes("vision") ? " · sees images" : ""}`;
  }

  function requestMessages(conv, extra) {
    const history = conv ? conv.messages.filter((m) => !m.error && !m.stopped && m.content !== undefined) : [];
    const out = history.map((m) => ({ role: m.role, content: messageContent(m.content, m.image) }));
    if (extra) out.push(extra);
    return out;
  }

  function scheduleQuote() {
    clearTimeout(quoteTimer);
    quoteTimer = setTimeout(async () => {
      const model = modelSelect.value;
      if (!model) return;
      try {
        const body = { model, max_tokens: MAX_TOKENS, messages: requestMessages(current(), { role: "user", content: draft.value || " " }) };
        const { data } = await api("/one/quote", { method: "POST", body: { model, task: attachment ? "vision" : "chat", body } });
        const d = activeKey() && store.get("dedicated");
        cost.textContent = `next request: at most ${micro(data.max_amount)} ${d && d.in_use ? "USDC" : "credits"}`;
      } catch (err) {
        cost.textContent = "";
      }
    }, 250);
  }

  function showBalance(headers) {
    const left = headers.get("x-one-balance");
    if (left === null) return;
    balance.textContent = `balance ${micro(left)} ${unitName(headers.get("x-one-balance-unit"))}`;
  }

  function showUpsell(err) {
    const offer = err.body.offer || {};
    upsell.hidden = false;
    upsell.replaceChildren(h("h3", {}, "You've used this epoch's included credits"),
      h("p", {}, offer.refresh_in ? `They refresh in ${duration(offer.refresh_in)}. ` : "", "Or keep going now with a Dedicated package, paid in USDC."),
      h("a", { href: "/packages", class: "one-button", id: "upsell-packages" }, "See packages"));
  }

  // ---- sending ----
  async function sendMessage() {
    const text = draft.value.trim();
    if ((!text && !attachment) || controller) return;
    if (!current()) newConversation();
    const conv = current();
    const model = modelSelect.value;
    const info = catalog.find((m) => m.id === model);
    if (attachment && info && !info.tasks.includes("vision")) {
      cost.textContent = `${model} cannot see images: pick a model marked "sees images".`;
      return;
    }
    const timer = msgTimer.value === "" ? conv.timer_s || 0 : Number(msgTimer.value);
    const expires_at = timer ? Date.now() + timer * 1000 : null;
    const user = { id: uid(), role: "user", content: text, image: attachment, expires_at };
    const answer = { id: uid(), role: "assistant", content: "", expires_at };
    const body = { model, stream: true, max_tokens: MAX_TOKENS, messages: requestMessages(conv, { role: "user", content: messageContent(text, user.image) }) };
    convs.update(conv.id, (c) => {
      c.model = model;
      if (!c.messages.length) c.title = (text || "Image").slice(0, 40);
      c.messages.push(user, answer);
    });
    draft.value = "";
    clearAttachment();
    upsell.hidden = true;
    render();
    const bubble = messages.querySelector(`[data-id="${answer.id}"] .one-body`);
    controller = new AbortController();
    send.hidden = true;
    stop.hidden = false;
    let content = "";
    let painted = false;
    const paint = () => {
      painted = false;
      bubble.innerHTML = markdown(content);
      messages.scrollTop = messages.scrollHeight;
    };
    const finish = (fields) => convs.update(conv.id, (c) => Object.assign(c.messages.find((m) => m.id === answer.id) || {}, fields));
    try {
      const response = await api("/v1/chat/completions", { method: "POST", body, signal: controller.signal, raw: true });
      if (!response.ok) {
        let data = null;
        try { data = await response.json(); } catch { /* not JSON */ }
        throw new ApiError(response.status, data);
      }
      showBalance(response.headers);
      let receipt = null;
      await readSSE(response, (chunk) => {
        if (chunk.error) throw new ApiError(502, chunk);
        for (const choice of chunk.choices || []) content += (choice.delta && choice.delta.content) || "";
        if (chunk.receipt) receipt = chunk.receipt;
        if (!painted) {
          painted = true;
          requestAnimationFrame(paint);
        }
      });
      finish({ content, receipt: receipt && receipt.hash, charge: receipt && receipt.charge });
    } catch (err) {
      if (err.name === "AbortError") finish({ content, stopped: true });
      else {
        finish({ content, error: errorText(err) });
        if (err instanceof ApiError && err.status === 402) showUpsell(err);
      }
    } finally {
      controller = null;
      send.hidden = false;
      stop.hidden = true;
      render();
      refreshAccountBalance();
    }
  }

  async function refreshAccountBalance() {
    if (!activeKey()) {
      balance.textContent = "not signed in: free dev access";
      return;
    }
    try {
      const { data } = await api("/one/account");
      balance.textContent = `balance ${micro(data.balance)} ${unitName(data.unit)}`;
    } catch {
      balance.textContent = "";
    }
  }

  // ---- attachments ----
  function clearAttachment() {
    attachment = null;
    fileInput.value = "";
    attachPreview.hidden = true;
    attachPreview.replaceChildren();
  }
  fileInput.addEventListener("change", () => {
    const file = fileInput.files[0];
    if (!file) return;
    if (file.size > MAX_IMAGE_BYTES) {
      cost.textContent = "That image is over 4 MB; pick a smaller one.";
      return;
    }
    const reader = new FileReader();
    reader.onload = () => {
      attachment = reader.result;
      attachPreview.hidden = false;
      attachPreview.replaceChildren(h("img", { src: attachment, class: "one-thumb", alt: file.name }), h("button", { type: "button", class: "one-icon", onclick: clearAttachment, title: "Remove" }, "×"));
      const vision = catalog.find((m) => m.tasks.includes("vision"));
      const chosen = catalog.find((m) => m.id === modelSelect.value);
      if (vision && chosen && !chosen.tasks.includes("vision")) {
        modelSelect.value = vision.id;
        modelSelect.dispatchEvent(new Event("change"));
      }
      scheduleQuote();
    };
    reader.readAsDataURL(file);
  });

  // ---- events ----
  draft.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      sendMessage();
    }
  });
  draft.addEventListener("input", scheduleQuote);
  modelSelect.addEventListener("change", () => {
    if (current()) convs.update(currentId, (c) => (c.model = modelSelect.value));
    showModelInfo();
    scheduleQuote();
  });
  convTimer.addEventListener("change", () => {
    if (!current()) newConversation();
    convs.update(currentId, (c) => (c.timer_s = Number(convTimer.value)));
  });
  flashToggle.addEventListener("change", () => {
    convs.flash = flashToggle.checked;
    convs.memory = [];
    currentId = null;
    if (convs.flash) newConversation();
    else render();
  });

  // Timers: delete expired messages everywhere (this tab, other tabs via the storage event) without a reload.
  const ticker = setInterval(() => {
    if (!root.isConnected) return cleanup();
    if (!controller && convs.purgeExpired()) render();
    for (const el of messages.querySelectorAll(".one-timer")) el.textContent = "⏱ " + duration((Number(el.dataset.expires) - Date.now()) / 1000);
  }, 1000);
  const catalogPoll = setInterval(loadCatalog, 5000);
  const offStorage = on("conversations", () => { if (!convs.flash && !controller) render(); });
  const offSession = on("session", refreshAccountBalance);
  function cleanup() {
    clearInterval(ticker);
    clearInterval(catalogPoll);
    offStorage();
    offSession();
  }

  convs.purgeExpired();
  render();
  loadCatalog().then(render);
  refreshAccountBalance();
}
