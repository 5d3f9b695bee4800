// Chat: conversations kept in this browser only; answers streamed from /v1/chat/completions.
// Chat holds the state and talks to the API; the components below it only draw what they are given.
import { marked } from "/vendor/marked.esm.js";
import DOMPurify from "/vendor/purify.es.mjs";
import { api, ApiError, activeKey, dedicated, duration, errorText, firstOnline, micro, rateText, readSSE, store, unitName } from "./core.js";
import { html, ReceiptBadge, useEffect, useEvent, useInterval, useMemo, useNow, useRef, useState } from "./ui.js";

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

/** The conversation so far as OpenAI messages (failed and stopped answers left out), plus `extra`. */
function requestMessages(conv, extra) {
  const history = conv ? conv.messages.filter((m) => !m.error && !m.stopped && m.content !== undefined) : [];
  const out = history.map((m) => ({ role: m.role, content: messageContent(m.content, m.image) }));
  if (extra) out.push(extra);
  return out;
}

/** POSTs a streaming chat completion: onHeaders(headers) once, onDelta(text) per piece of the answer;
 * resolves to the receipt from the last chunk. An error reply or error event throws an ApiError. */
async function streamCompletion(body, signal, { onHeaders, onDelta }) {
  const response = await api("/v1/chat/completions", { method: "POST", body, signal, raw: true });
  if (!response.ok) {
    let data = null;
    try { data = await response.json(); } catch { /* not JSON */ }
    throw new ApiError(response.status, data);
  }
  onHeaders(response.headers);
  let receipt = null;
  await readSSE(response, (chunk) => {
    if (chunk.error) throw new ApiError(502, chunk);
    for (const choice of chunk.choices || []) onDelta((choice.delta && choice.delta.content) || "");
    if (chunk.receipt) receipt = chunk.receipt;
  });
  return receipt;
}

function markdown(text) {
  return DOMPurify.sanitize(marked.parse(text || "", { gfm: true, breaks: true }));
}

function modelInfo(m) {
  return `${rateText(m)} · ${m.context_length} tokens context · ${m.available ? `online (${m.free_slots} free)` : "offline"}${m.tasks.includes("vision") ? " · sees images" : ""}`;
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

/** The conversations as view state: every change is written to their store first, then read back. */
function useConversations() {
  const convs = useMemo(() => new Conversations(), []);
  const [list, setList] = useState(() => (convs.purgeExpired(), convs.all()));
  const reread = () => setList([...convs.all()]);
  return {
    list,
    flash: convs.flash,
    reread,
    create(model) {
      const conv = { id: uid(), title: "New chat", model, timer_s: 0, messages: [], updated: Date.now() };
      convs.save([conv, ...convs.all()]);
      reread();
      return conv;
    },
    update(id, fn) {
      convs.update(id, fn);
      reread();
    },
    remove(id) {
      convs.save(convs.all().filter((c) => c.id !== id));
      reread();
    },
    setFlash(flash) {
      convs.flash = flash;
      convs.memory = [];
      reread();
    },
    purgeExpired() {
      if (convs.purgeExpired()) reread();
    },
  };
}

export function Chat() {
  const convs = useConversations();
  const [currentId, setCurrentId] = useState(null);
  const [catalog, setCatalog] = useState({ models: [], error: null });
  const [picked, setPicked] = useState(""); // the model chosen while no conversation is open
  const [draft, setDraft] = useState("");
  const [attachment, setAttachment] = useState(null); // { url: data URL, name }
  const [messageTimer, setMessageTimer] = useState("");
  const [note, setNote] = useState(""); // the cost line: the next request's quote, or why a send was refused
  const [balance, setBalance] = useState("");
  const [offer, setOffer] = useState(null); // the Dedicated offer of a 402
  const [live, setLive] = useState(null); // { id, content } of the answer being streamed
  const controller = useRef(null); // AbortController of the streaming answer
  const draftField = useRef(null);

  const conv = convs.list.find((c) => c.id === currentId) || convs.list[0] || null;
  const models = catalog.models;
  const model = (conv && conv.model) || picked || (firstOnline(models) || {}).id || "";

  async function loadCatalog() {
    try {
      const { data } = await api("/one/catalog", { key: null });
      setCatalog({ models: data.models.filter((m) => m.tasks.includes("chat")), error: null });
    } catch (err) {
      setCatalog((c) => ({ ...c, error: err }));
    }
  }

  async function refreshBalance() {
    if (!activeKey()) return setBalance("not signed in: free dev access");
    try {
      const { data } = await api("/one/account");
      setBalance(`balance ${micro(data.balance)} ${unitName(data.unit)}`);
    } catch {
      setBalance("");
    }
  }

  useEffect(() => {
    loadCatalog();
    refreshBalance();
  }, []);
  useInterval(loadCatalog, 5000);
  useEvent("session", refreshBalance);
  // Timers delete expired messages everywhere (this tab, other tabs via the storage event) without a reload.
  useInterval(() => {
    if (!controller.current) convs.purgeExpired();
  }, 1000);
  useEvent("conversations", () => {
    if (!convs.flash && !controller.current) convs.reread();
  });

  // The next request's price, quoted once typing pauses.
  useEffect(() => {
    if (!model) return;
    let current = true;
    const timer = setTimeout(async () => {
      try {
        const body = { model, max_tokens: MAX_TOKENS, messages: requestMessages(conv, { role: "user", content: draft || " " }) };
        const { data } = await api("/one/quote", { method: "POST", body: { model, task: attachment ? "vision" : "chat", body } });
        const d = activeKey() && dedicated();
        if (current) setNote(`next request: at most ${micro(data.max_amount)} ${d && d.in_use ? "USDC" : "credits"}`);
      } catch {
        if (current) setNote("");
      }
    }, 250);
    return () => {
      current = false;
      clearTimeout(timer);
    };
  }, [model, draft, attachment, conv && conv.id, conv && conv.updated]);

  function newConversation() {
    const created = convs.create(model || "tiny-chat");
    setCurrentId(created.id);
    if (draftField.current) draftField.current.focus();
    return created;
  }

  function chooseModel(id) {
    setPicked(id);
    if (conv) convs.update(conv.id, (c) => (c.model = id));
  }

  function setConversationTimer(seconds) {
    const target = conv || newConversation();
    convs.update(target.id, (c) => (c.timer_s = seconds));
  }

  function toggleFlash(flash) {
    convs.setFlash(flash);
    setCurrentId(null);
    if (flash) newConversation();
  }

  function deleteConversation(id) {
    convs.remove(id);
    if (conv && conv.id === id) setCurrentId(null);
  }

  function attach(file) {
    if (file.size > MAX_IMAGE_BYTES) return setNote("That image is over 4 MB; pick a smaller one.");
    const reader = new FileReader();
    reader.onload = () => {
      setAttachment({ url: reader.result, name: file.name });
      const vision = firstOnline(models.filter((m) => m.tasks.includes("vision")));
      const chosen = models.find((m) => m.id === model);
      if (vision && chosen && !chosen.tasks.includes("vision")) chooseModel(vision.id);
    };
    reader.readAsDataURL(file);
  }

  async function send() {
    const text = draft.trim();
    if ((!text && !attachment) || controller.current) return;
    const info = models.find((m) => m.id === model);
    if (attachment && info && !info.tasks.includes("vision")) return setNote(`${model} cannot see images: pick a model marked "sees images".`);
    const target = conv || newConversation();
    const image = attachment ? attachment.url : null;
    const timer = messageTimer === "" ? target.timer_s || 0 : Number(messageTimer);
    const expires_at = timer ? Date.now() + timer * 1000 : null;
    const user = { id: uid(), role: "user", content: text, image, expires_at };
    const answer = { id: uid(), role: "assistant", content: "", expires_at };
    const body = { model, stream: true, max_tokens: MAX_TOKENS, messages: requestMessages(target, { role: "user", content: messageContent(text, image) }) };
    convs.update(target.id, (c) => {
      c.model = model;
      if (!c.messages.length) c.title = (text || "Image").slice(0, 40);
      c.messages.push(user, answer);
    });
    setCurrentId(target.id);
    setDraft("");
    setAttachment(null);
    setOffer(null);
    controller.current = new AbortController();
    setLive({ id: answer.id, content: "" });
    let content = "";
    let frame = 0; // repaint at most once per animation frame, however fast the deltas come
    const paint = () => {
      frame = 0;
      setLive({ id: answer.id, content });
    };
    const finish = (fields) => convs.update(target.id, (c) => Object.assign(c.messages.find((m) => m.id === answer.id) || {}, fields));
    try {
      const receipt = await streamCompletion(body, controller.current.signal, {
        onHeaders(headers) {
          const left = headers.get("x-one-balance");
          if (left !== null) setBalance(`balance ${micro(left)} ${unitName(headers.get("x-one-balance-unit"))}`);
        },
        onDelta(text) {
          content += text;
          if (!frame) frame = requestAnimationFrame(paint);
        },
      });
      finish({ content, receipt: receipt && receipt.hash, charge: receipt && receipt.charge });
    } catch (err) {
      if (err.name === "AbortError") finish({ content, stopped: true });
      else {
        finish({ content, error: errorText(err) });
        if (err instanceof ApiError && err.status === 402) setOffer(err.body.offer || {});
      }
    } finally {
      cancelAnimationFrame(frame);
      controller.current = null;
      setLive(null);
      refreshBalance();
    }
  }

  return html`
    <div class="one-chat">
      <aside class="one-sidebar">
        <button class="one-button" id="new-chat" onClick=${() => newConversation()}>+ New chat</button>
        <label class="one-flash"><input type="checkbox" id="flash-toggle" checked=${convs.flash} onChange=${(e) => toggleFlash(e.target.checked)} /> Flash mode</label>
        <${ConversationList} conversations=${convs.list} currentId=${conv && conv.id} onOpen=${setCurrentId} onDelete=${deleteConversation} />
      </aside>
      <section class="one-main">
        <div class="one-toolbar">
          <${ModelPicker} models=${models} value=${model} error=${catalog.error} onChange=${chooseModel} />
          <span class="one-spacer" />
          <label class="one-muted">Auto-delete <${TimerSelect} id="conversation-timer" title="Delete every new message of this conversation after…"
            value=${String((conv && conv.timer_s) || 0)} onChange=${(v) => setConversationTimer(Number(v))} /></label>
        </div>
        <div class="one-flash-banner" id="flash-banner" hidden=${!convs.flash}>
          Flash mode: this conversation lives in this tab's memory only. Close the tab and it is gone; nothing is written anywhere.
        </div>
        <${MessageList} conversation=${conv} live=${live} />
        <${Upsell} offer=${offer} />
        <${Composer} draft=${draft} onDraft=${setDraft} onSend=${send} draftField=${draftField}
          attachment=${attachment} onAttach=${attach} onDetach=${() => setAttachment(null)}
          messageTimer=${messageTimer} onMessageTimer=${setMessageTimer} note=${note} balance=${balance}
          streaming=${!!live} onStop=${() => controller.current && controller.current.abort()} />
      </section>
    </div>`;
}

function ConversationList({ conversations, currentId, onOpen, onDelete }) {
  const newestFirst = [...conversations].sort((a, b) => b.updated - a.updated);
  return html`
    <ul class="one-conv-list" id="conversation-list">
      ${newestFirst.map((c) => html`
        <li key=${c.id} class=${c.id === currentId ? "active" : ""} data-id=${c.id}>
          <button class="one-conv" onClick=${() => onOpen(c.id)}>${c.title || "New chat"}</button>
          <button class="one-icon" title="Delete conversation" onClick=${() => onDelete(c.id)}>×</button>
        </li>`)}
    </ul>`;
}

function ModelPicker({ models, value, error, onChange }) {
  const chosen = models.find((m) => m.id === value);
  return html`
    <select id="model-select" class="one-select" value=${value} onChange=${(e) => onChange(e.target.value)}>
      ${models.map((m) => html`<option key=${m.id} value=${m.id}>${`${m.available ? "●" : "○"} ${m.id}`}</option>`)}
    </select>
    <span class="one-muted" id="model-info">${error ? `catalog unavailable: ${errorText(error)}` : chosen ? modelInfo(chosen) : ""}</span>`;
}

/** A self-delete interval picker; `prefix` labels each option, `inherit` adds a first option "use the conversation's". */
function TimerSelect({ id, title, value, onChange, prefix = "", inherit = null }) {
  return html`
    <select id=${id} class="one-select" title=${title} value=${value} onChange=${(e) => onChange(e.target.value)}>
      ${inherit && html`<option value="">${inherit}</option>`}
      ${TIMERS.map(([label, seconds]) => html`<option key=${seconds} value=${String(seconds)}>${prefix + label}</option>`)}
    </select>`;
}

function MessageList({ conversation, live }) {
  const box = useRef(null);
  const messages = conversation ? conversation.messages : null;
  useEffect(() => {
    box.current.scrollTop = box.current.scrollHeight;
  }, [conversation && conversation.id, messages && messages.length, live && live.content]);
  return html`
    <div class="one-messages" id="messages" ref=${box}>
      ${messages
        ? messages.map((m) => html`<${Message} key=${m.id} message=${m} content=${live && live.id === m.id ? live.content : m.content} />`)
        : html`<p class="one-empty">Ask anything. Every answer comes with a signed receipt you can verify.</p>`}
    </div>`;
}

/** One message: an answer is markdown (sanitised), a question is plain text with its image. */
function Message({ message: m, content }) {
  const answer = useMemo(() => (m.role === "assistant" ? { __html: markdown(content) } : null), [m.role, content]);
  return html`
    <div class=${`one-msg one-${m.role}`} data-id=${m.id}>
      ${answer
        ? html`<div class="one-body" dangerouslySetInnerHTML=${answer} />`
        : html`<div class="one-body">${m.image && html`<img src=${m.image} class="one-thumb" alt="attached image" />`}${content}</div>`}
      <div class="one-meta">
        ${m.expires_at && html`<${Countdown} until=${m.expires_at} />`}
        ${m.receipt && html`<${ReceiptBadge} receipt=${{ hash: m.receipt, charge: m.charge }} answer=${m.content} />`}
        ${m.stopped && html`<span class="one-muted">stopped — not charged</span>`}
        ${m.error && html`<span class="one-error">${m.error}</span>`}
      </div>
    </div>`;
}

function Countdown({ until }) {
  const now = useNow();
  return html`<span class="one-timer" data-expires=${String(until)}>${"⏱ " + duration((until - now) / 1000)}</span>`;
}

function Upsell({ offer }) {
  return html`
    <div class="one-card one-upsell" id="upsell" hidden=${!offer}>
      ${offer && html`
        <h3>You've used this epoch's included credits</h3>
        <p>${offer.refresh_in ? `They refresh in ${duration(offer.refresh_in)}. ` : ""}Or keep going now with a Dedicated package, paid in USDC.</p>
        <a href="/packages" class="one-button" id="upsell-packages">See packages</a>`}
    </div>`;
}

function Composer({ draft, onDraft, onSend, draftField, attachment, onAttach, onDetach, messageTimer, onMessageTimer, note, balance, streaming, onStop }) {
  const fileInput = useRef(null);
  const picked = (e) => {
    const file = e.target.files[0];
    e.target.value = ""; // so picking the same file again still counts
    if (file) onAttach(file);
  };
  const submit = (e) => {
    e.preventDefault();
    onSend();
  };
  const enterSends = (e) => e.key === "Enter" && !e.shiftKey && submit(e);
  return html`
    <form class="one-composer" id="composer" onSubmit=${submit}>
      <div class="one-attachment" id="attachment" hidden=${!attachment}>
        ${attachment && html`
          <img src=${attachment.url} class="one-thumb" alt=${attachment.name} />
          <button type="button" class="one-icon" onClick=${onDetach} title="Remove">×</button>`}
      </div>
      <textarea id="chat-input" class="one-textarea" rows="3" placeholder="Message…  (Enter sends, Shift+Enter for a new line)"
        ref=${draftField} value=${draft} onInput=${(e) => onDraft(e.target.value)} onKeyDown=${enterSends} />
      <div class="one-row">
        <button type="button" class="one-button one-secondary" id="attach-button" title="Attach an image" onClick=${() => fileInput.current.click()}>Attach image</button>
        <input type="file" accept="image/*" id="attach-input" hidden ref=${fileInput} onChange=${picked} />
        <${TimerSelect} id="message-timer" title="Delete this message after…" value=${messageTimer} onChange=${onMessageTimer}
          prefix="timer: " inherit="timer: conversation" />
        <span class="one-muted" id="cost">${note}</span>
        <span class="one-spacer" />
        <span class="one-muted" id="chat-balance">${balance}</span>
        <button type="button" class="one-button one-danger" id="stop-button" hidden=${!streaming} onClick=${onStop}>Stop</button>
        <button type="submit" class="one-button" id="send-button" hidden=${streaming}>Send</button>
      </div>
    </form>`;
}
