// Chat: conversations kept in this browser only; answers streamed from /v1/chat/completions.
// Chat holds the state and talks to the API; the components below it only draw what they are given.
import { marked } from "/vendor/marked.esm.js";
import DOMPurify from "/vendor/purify.es.mjs";
import { api, ApiError, activeKey, currentUnit, dedicated, duration, errorText, firstOnline, laneName, money, rateText, readSSE, session, store } from "./core.js";
import { html, ReceiptBadge, useEffect, useEvent, useInterval, useMemo, useNow, useRef, useState } from "./ui.js";

export const TIMERS = [["off", 0], ["10 s", 10], ["1 min", 60], ["5 min", 300], ["1 hour", 3600], ["1 day", 86400]];
const MAX_TOKENS = 256; // a conversation's answer cap unless its settings say otherwise
const MAX_IMAGE_BYTES = 4 * 1024 * 1024;
const NEW_TITLE = "New chat";

function uid() {
  return crypto.randomUUID().replace(/-/g, "").slice(0, 16);
}

/** A message's OpenAI `content`: the text, or text + image parts when an image is attached. */
function messageContent(text, image) {
  return image ? [{ type: "text", text }, { type: "image_url", image_url: { url: image } }] : text;
}

/** The history a request can carry: failed and stopped answers left out. */
function sendable(conv) {
  return conv ? conv.messages.filter((m) => !m.error && !m.stopped && m.content !== undefined) : [];
}

/** A conversation's request: its system prompt, the history from `from` on, then `extra`; its settings as parameters. */
function requestBody(conv, model, history, extra) {
  const settings = (conv && conv.settings) || {};
  const messages = [];
  if (settings.system) messages.push({ role: "system", content: settings.system });
  for (const m of history) messages.push({ role: m.role, content: messageContent(m.content, m.image) });
  if (extra) messages.push(extra);
  const body = { model, max_tokens: bounded(settings.max_tokens, 1, 8192, true) ?? MAX_TOKENS, messages };
  const temperature = bounded(settings.temperature, 0, 2, false);
  if (temperature !== null) body.temperature = temperature;
  return body;
}

/** A setting as typed (a string, kept as typed so editing is never fought) as a number within [low, high], or null. */
function bounded(typed, low, high, integer) {
  if (typed === undefined || typed === null || String(typed).trim() === "") return null;
  const n = Number(typed);
  if (!Number.isFinite(n)) return null;
  const within = Math.min(high, Math.max(low, n));
  return integer ? Math.floor(within) : within;
}

/** How many of the oldest history messages to leave out so the prompt fits the model's context with room for the
 * answer (counts from /one/quote, made with the model's own tokenizer). `fits: false` when even the system prompt
 * and the newest message alone do not fit: the send is refused before anything is charged. */
function fitToContext(fit, body, history) {
  const room = fit.context - body.max_tokens;
  const counts = fit.message_tokens;
  const offset = counts.length - history.length - 1; // a system prompt comes first
  let total = fit.prompt_tokens;
  let dropped = 0;
  // Drop the oldest turns first, and keep whole turns: the kept history never starts with an answer.
  while (dropped < history.length && (total > room || history[dropped].role === "assistant")) {
    total -= counts[offset + dropped];
    dropped++;
  }
  return { dropped, tokens: total, fits: total <= room, room };
}

/** Quote a request: the most it can cost and how much of the context it takes. */
async function quoteFor(body, task) {
  const { data } = await api("/one/quote", { method: "POST", body: { model: body.model, task, body } });
  return data;
}

/** POSTs a streaming chat completion: onDelta(text) per piece of the answer;
 * resolves to the receipt from the last chunk. An error reply or error event throws an ApiError. */
async function streamCompletion(body, signal, onDelta) {
  const response = await api("/v1/chat/completions", { method: "POST", body: { ...body, stream: true }, signal, raw: true });
  if (!response.ok) {
    let data = null;
    try { data = await response.json(); } catch { /* not JSON */ }
    throw new ApiError(response.status, data);
  }
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

/** The title a conversation gets from its first question, unless its owner named it; "New chat" once that
 * question is gone (deleted or expired), so deleted text never lingers as a title. */
function retitle(conv) {
  if (conv.named) return;
  const first = conv.messages.find((m) => m.role === "user");
  conv.title = first ? (first.content || "Image").slice(0, 40) : NEW_TITLE;
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
  /** Drop messages whose timer ran out (counting them in `expired`, retitling); true when anything was deleted. */
  purgeExpired(now = Date.now()) {
    const list = this.all();
    let changed = false;
    for (const conv of list) {
      const kept = conv.messages.filter((m) => !m.expires_at || m.expires_at > now);
      if (kept.length !== conv.messages.length) {
        conv.expired = (conv.expired || 0) + conv.messages.length - kept.length;
        conv.messages = kept;
        if (conv.cut && !kept.some((m) => m.id === conv.cut)) conv.cut = null;
        retitle(conv);
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
      const conv = { id: uid(), title: NEW_TITLE, model, timer_s: 0, settings: {}, messages: [], updated: Date.now() };
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

/** What this browser's requests are charged to, in words: lane, package, what is left, and until when. */
async function loadFunds() {
  const d = dedicated();
  if (!activeKey()) return { text: "Not signed in: open dev access — charges are written on receipts, not billed to you", lane: null };
  const { data } = await api("/one/account");
  const left = `${money(data.balance, data.unit)} left`;
  if (data.lane === "dedicated") {
    const until = data.expires_at ? ` · until ${new Date(data.expires_at * 1000).toLocaleDateString()}` : "";
    return { text: `Dedicated · ${data.package || (d && d.package) || ""} · ${left}${until}`, lane: "dedicated" };
  }
  return { text: `Included · ${left}${data.refresh_in !== null ? ` · refreshes in ${duration(data.refresh_in)}` : ""}`, lane: "included" };
}

export function Chat() {
  const convs = useConversations();
  const [currentId, setCurrentId] = useState(null);
  const [catalog, setCatalog] = useState({ models: [], error: null });
  const [picked, setPicked] = useState(""); // the model chosen while no conversation is open
  const [draft, setDraft] = useState("");
  const [editing, setEditing] = useState(null); // id of the question being edited: sending replaces it and what followed
  const [attachment, setAttachment] = useState(null); // { url: data URL, name }
  const [messageTimer, setMessageTimer] = useState("");
  const [note, setNote] = useState({ text: "", warn: false }); // the next request's quote and fit, or why a send was refused
  const [funds, setFunds] = useState({ text: "", lane: null });
  const [offer, setOffer] = useState(null); // the Dedicated offer of a 402
  const [live, setLive] = useState(null); // { id, content } of the answer being streamed
  const [search, setSearch] = useState("");
  const controller = useRef(null); // AbortController of the streaming answer
  const draftField = useRef(null);

  const conv = convs.list.find((c) => c.id === currentId) || convs.list[0] || null;
  const models = catalog.models;
  const model = (conv && conv.model) || picked || (firstOnline(models) || {}).id || "";
  const history = () => {
    const all = sendable(conv);
    const cut = editing ? all.findIndex((m) => m.id === editing) : -1;
    return cut >= 0 ? all.slice(0, cut) : all;
  };

  async function loadCatalog() {
    try {
      const { data } = await api("/one/catalog", { key: null });
      setCatalog({ models: data.models.filter((m) => m.tasks.includes("chat")), error: null });
    } catch (err) {
      setCatalog((c) => ({ ...c, error: err }));
    }
  }

  async function refreshFunds() {
    try {
      setFunds(await loadFunds());
    } catch {
      setFunds({ text: "", lane: null });
    }
  }

  useEffect(() => {
    loadCatalog();
    refreshFunds();
    if (draftField.current) draftField.current.focus(); // the message box is where a visit starts
  }, []);
  useInterval(loadCatalog, 5000);
  useEvent("session", refreshFunds);
  // Timers delete expired messages everywhere (this tab, other tabs via the storage event) without a reload.
  useInterval(() => {
    if (!controller.current) convs.purgeExpired();
  }, 1000);
  useEvent("conversations", () => {
    if (!convs.flash && !controller.current) convs.reread();
  });

  // The next request's price and how much of the context it takes, quoted once typing pauses.
  useEffect(() => {
    if (!model) return;
    let current = true;
    const timer = setTimeout(async () => {
      try {
        const past = history();
        const body = requestBody(conv, model, past, { role: "user", content: draft || " " });
        const data = await quoteFor(body, attachment ? "vision" : "chat");
        if (!current) return;
        const price = `next request: at most ${money(data.max_amount, currentUnit())} (${laneName(currentUnit())})`;
        if (data.context == null) return setNote({ text: price, warn: false });
        const fit = fitToContext(data, body, past);
        if (!fit.fits) {
          setNote({ warn: true, text: `Too long for ${model}: this message is about ${data.message_tokens[data.message_tokens.length - 1]} tokens and `
            + `${model} reads at most ${data.context} (${body.max_tokens} kept for the answer). Shorten it or pick a model with a longer context.` });
        } else {
          setNote({ warn: false, text: `${price} · about ${fit.tokens} of ${fit.room} prompt tokens`
            + (fit.dropped ? ` · the ${fit.dropped} oldest messages will be left out to fit` : "") });
        }
      } catch {
        if (current) setNote({ text: "", warn: false });
      }
    }, 250);
    return () => {
      current = false;
      clearTimeout(timer);
    };
  }, [model, draft, attachment, editing, conv && conv.id, conv && conv.updated]);

  function newConversation() {
    const created = convs.create(model || "tiny-chat");
    setCurrentId(created.id);
    setEditing(null);
    if (draftField.current) draftField.current.focus();
    return created;
  }

  function openConversation(id) {
    setCurrentId(id);
    setEditing(null);
    if (draftField.current) draftField.current.focus();
  }

  function chooseModel(id) {
    setPicked(id);
    if (conv) convs.update(conv.id, (c) => (c.model = id));
  }

  function setConversationTimer(seconds) {
    const target = conv || newConversation();
    convs.update(target.id, (c) => (c.timer_s = seconds));
  }

  function changeSettings(fields) {
    const target = conv || newConversation();
    convs.update(target.id, (c) => (c.settings = { ...(c.settings || {}), ...fields }));
  }

  function toggleFlash(flash) {
    const flashChat = convs.flash && convs.list.some((c) => c.messages.length);
    if (!flash && flashChat && !confirm("Turn flash mode off? This flash chat is discarded: it was never written anywhere.")) return false;
    convs.setFlash(flash);
    setCurrentId(null);
    if (flash) newConversation();
    return true;
  }

  function deleteConversation(id) {
    const target = convs.list.find((c) => c.id === id);
    if (target && target.messages.length && !confirm(`Delete the chat “${target.title}”? Its messages are gone for good.`)) return;
    convs.remove(id);
    if (conv && conv.id === id) setCurrentId(null);
  }

  function renameConversation(id, title) {
    const clean = title.trim().slice(0, 80);
    convs.update(id, (c) => {
      c.named = !!clean;
      c.title = clean;
      retitle(c);
    });
  }

  function deleteMessage(id) {
    convs.update(conv.id, (c) => {
      c.messages = c.messages.filter((m) => m.id !== id);
      if (c.cut === id) c.cut = null;
      retitle(c);
    });
    if (editing === id) setEditing(null);
  }

  function editMessage(m) {
    setEditing(m.id);
    setDraft(m.content || "");
    setAttachment(m.image ? { url: m.image, name: "attached image" } : null);
    if (draftField.current) draftField.current.focus();
  }

  function regenerate(answerId) {
    const all = conv.messages;
    const at = all.findIndex((m) => m.id === answerId);
    const question = at > 0 ? all[at - 1] : null;
    if (!question || question.role !== "user" || controller.current) return;
    convs.update(conv.id, (c) => (c.messages = c.messages.slice(0, at)));
    ask(conv, null, sendable({ messages: all.slice(0, at - 1) }), question);
  }

  function attach(file) {
    if (file.size > MAX_IMAGE_BYTES) return setNote({ text: "That image is over 4 MB; pick a smaller one.", warn: true });
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
    if (attachment && info && !info.tasks.includes("vision")) return setNote({ text: `${model} cannot see images: pick a model marked "sees images".`, warn: true });
    const target = conv || newConversation();
    const timer = messageTimer === "" ? target.timer_s || 0 : Number(messageTimer);
    const question = { id: uid(), role: "user", content: text, image: attachment ? attachment.url : null, expires_at: timer ? Date.now() + timer * 1000 : null };
    await ask(target, editing, history(), question);
  }

  /** Ask `question` after `past` (an edit replaces the question `replacing` and everything after it): fit the
   * history to the context first, refuse (keeping the draft) when even the question alone does not fit. */
  async function ask(target, replacing, past, question) {
    const body = requestBody(target, model, past, { role: "user", content: messageContent(question.content, question.image) });
    let fit = { dropped: 0, fits: true };
    try {
      const quoted = await quoteFor(body, question.image ? "vision" : "chat");
      if (quoted.context != null) fit = fitToContext(quoted, body, past);
    } catch { /* no quote: the worker still refuses what does not fit, and nothing is charged */ }
    if (!fit.fits) {
      return setNote({ warn: true, text: `Not sent: this message alone is more than ${model} can read with room for the answer. Shorten it.` });
    }
    const sent = past.slice(fit.dropped);
    const request = requestBody(target, model, sent, body.messages[body.messages.length - 1]);
    const answer = { id: uid(), role: "assistant", content: "", expires_at: question.expires_at };
    const asked = target.messages.some((m) => m.id === question.id);
    convs.update(target.id, (c) => {
      c.model = model;
      if (replacing) c.messages = c.messages.slice(0, Math.max(0, c.messages.findIndex((m) => m.id === replacing)));
      if (!asked) c.messages.push(question);
      c.messages.push(answer);
      c.cut = fit.dropped ? (sent.length ? sent[0] : question).id : null; // where the notice of what was left out goes
      retitle(c);
    });
    setCurrentId(target.id);
    setDraft("");
    setEditing(null);
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
      const receipt = await streamCompletion(request, controller.current.signal, (piece) => {
        content += piece;
        if (!frame) frame = requestAnimationFrame(paint);
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
      refreshFunds();
    }
  }

  return html`
    <div class="one-chat">
      <aside class="one-sidebar">
        <div class="one-row">
          <button class="one-button" id="new-chat" onClick=${() => newConversation()}>+ New chat</button>
          <label class="one-flash"><input type="checkbox" id="flash-toggle" checked=${convs.flash}
            onChange=${(e) => { if (!toggleFlash(e.target.checked)) e.target.checked = convs.flash; }} /> Flash mode</label>
        </div>
        <details class="one-drawer" id="chat-drawer" open=${!matchMedia("(max-width: 720px)").matches}>
          <summary>${`Chats (${convs.list.length})`}</summary>
          <input type="search" class="one-select one-search" id="chat-search" placeholder="Search chats" aria-label="Search chats"
            value=${search} onInput=${(e) => setSearch(e.target.value)} />
          <${ConversationList} conversations=${convs.list} currentId=${conv && conv.id} search=${search}
            onOpen=${openConversation} onDelete=${deleteConversation} onRename=${renameConversation} />
        </details>
      </aside>
      <section class="one-main" aria-label="Conversation">
        <div class="one-toolbar">
          <${ModelPicker} models=${models} value=${model} error=${catalog.error} onChange=${chooseModel} />
          <span class="one-spacer" />
          <label class="one-muted">Auto-delete <${TimerSelect} id="conversation-timer" title="Delete every new message of this conversation after…"
            value=${String((conv && conv.timer_s) || 0)} onChange=${(v) => setConversationTimer(Number(v))} /></label>
          <${ChatSettings} settings=${(conv && conv.settings) || {}} onChange=${changeSettings} />
        </div>
        <div class="one-flash-banner" id="flash-banner" hidden=${!convs.flash}>
          Flash mode: this conversation lives in this tab's memory only. Close the tab and it is gone; nothing is written anywhere.
        </div>
        <${MessageList} conversation=${conv} live=${live} flash=${convs.flash} busy=${!!live} model=${model}
          onDelete=${deleteMessage} onEdit=${editMessage} onRegenerate=${regenerate} />
        <${Upsell} offer=${offer} />
        <${Composer} draft=${draft} onDraft=${setDraft} onSend=${send} draftField=${draftField}
          attachment=${attachment} onAttach=${attach} onDetach=${() => setAttachment(null)}
          messageTimer=${messageTimer} onMessageTimer=${setMessageTimer} note=${note} funds=${funds}
          editing=${editing} onCancelEdit=${() => { setEditing(null); setDraft(""); }}
          streaming=${!!live} onStop=${() => controller.current && controller.current.abort()} />
      </section>
    </div>`;
}

function ConversationList({ conversations, currentId, search, onOpen, onDelete, onRename }) {
  const [renaming, setRenaming] = useState(null);
  const needle = search.trim().toLowerCase();
  const matches = (c) => !needle || (c.title || "").toLowerCase().includes(needle)
    || c.messages.some((m) => typeof m.content === "string" && m.content.toLowerCase().includes(needle));
  const shown = conversations.filter(matches).sort((a, b) => b.updated - a.updated);
  const done = (id, value) => {
    onRename(id, value);
    setRenaming(null);
  };
  return html`
    <ul class="one-conv-list" id="conversation-list">
      ${shown.map((c) => html`
        <li key=${c.id} class=${c.id === currentId ? "active" : ""} data-id=${c.id}>
          ${renaming === c.id
            ? html`<${RenameInput} conversation=${c} onDone=${(value) => done(c.id, value)} onCancel=${() => setRenaming(null)} />`
            : html`<button class="one-conv" aria-current=${c.id === currentId ? "true" : null} onClick=${() => onOpen(c.id)}
                onDblClick=${() => setRenaming(c.id)}>${c.title || NEW_TITLE}</button>`}
          <button class="one-icon" title="Rename chat" aria-label=${`Rename ${c.title}`} onClick=${() => setRenaming(c.id)}>✎</button>
          <button class="one-icon" title="Delete chat" aria-label=${`Delete ${c.title}`} onClick=${() => onDelete(c.id)}>×</button>
        </li>`)}
      ${needle && !shown.length && html`<li class="one-muted" id="no-chat-found">No chat matches.</li>`}
    </ul>`;
}

/** The name field of a chat being renamed: focused once, uncommitted until Enter or leaving it (Escape cancels). */
function RenameInput({ conversation: c, onDone, onCancel }) {
  const field = useRef(null);
  useEffect(() => field.current.focus(), []);
  return html`<input class="one-select one-rename" aria-label="Chat name" ref=${field} defaultValue=${c.named ? c.title : ""} placeholder=${c.title}
    onKeyDown=${(e) => { if (e.key === "Enter") onDone(e.target.value); if (e.key === "Escape") onCancel(); }}
    onBlur=${(e) => onDone(e.target.value)} />`;
}

function ModelPicker({ models, value, error, onChange }) {
  const chosen = models.find((m) => m.id === value);
  return html`
    <select id="model-select" class="one-select" aria-label="Model" value=${value} onChange=${(e) => onChange(e.target.value)}>
      ${models.map((m) => html`<option key=${m.id} value=${m.id}>${`${m.available ? "●" : "○"} ${m.id}`}</option>`)}
    </select>
    <span class="one-muted" id="model-info">${error ? `catalog unavailable: ${errorText(error)}` : chosen ? modelInfo(chosen) : ""}</span>`;
}

/** This conversation's own system prompt, temperature and answer length, sent with each of its requests. */
function ChatSettings({ settings, onChange }) {
  return html`
    <details class="one-settings" id="chat-settings">
      <summary class="one-button one-secondary">Settings</summary>
      <div class="one-card one-settings-panel">
        <label>System prompt
          <textarea class="one-textarea" id="setting-system" rows="3" placeholder="e.g. You answer in French."
            value=${settings.system || ""} onInput=${(e) => onChange({ system: e.target.value })} /></label>
        <label>Temperature (0–2)
          <input class="one-select" id="setting-temperature" type="number" min="0" max="2" step="0.1" placeholder="model default"
            value=${settings.temperature ?? ""} onInput=${(e) => onChange({ temperature: e.target.value })} /></label>
        <label>Max answer tokens
          <input class="one-select" id="setting-max-tokens" type="number" min="1" max="8192" step="1" placeholder=${String(MAX_TOKENS)}
            value=${settings.max_tokens ?? ""} onInput=${(e) => onChange({ max_tokens: e.target.value })} /></label>
      </div>
    </details>`;
}

/** A self-delete interval picker; `prefix` labels each option, `inherit` adds a first option "use the conversation's". */
function TimerSelect({ id, title, value, onChange, prefix = "", inherit = null }) {
  return html`
    <select id=${id} class="one-select" title=${title} aria-label=${title} value=${value} onChange=${(e) => onChange(e.target.value)}>
      ${inherit && html`<option value="">${inherit}</option>`}
      ${TIMERS.map(([label, seconds]) => html`<option key=${seconds} value=${String(seconds)}>${prefix + label}</option>`)}
    </select>`;
}

function MessageList({ conversation, live, flash, busy, model, onDelete, onEdit, onRegenerate }) {
  const box = useRef(null);
  const inner = useRef(null);
  const pinned = useRef(true); // at the newest message: stay there when the list or the box changes size
  const messages = conversation ? conversation.messages : null;
  const placed = useRef(-1); // where toBottom last put the list: its own scroll event must not unpin it
  const toBottom = () => {
    box.current.scrollTop = box.current.scrollHeight;
    placed.current = box.current.scrollTop;
  };
  useEffect(() => {
    const el = box.current;
    const onScroll = () => {
      if (el.scrollTop !== placed.current) pinned.current = el.scrollHeight - el.clientHeight - el.scrollTop < 8;
    };
    const resized = new ResizeObserver(() => pinned.current && toBottom());
    resized.observe(el); // the box (the composer's note above it grows) and its content (fonts, images, markdown)
    resized.observe(inner.current);
    el.addEventListener("scroll", onScroll);
    return () => {
      resized.disconnect();
      el.removeEventListener("scroll", onScroll);
    };
  }, []);
  useEffect(() => {
    pinned.current = true;
    toBottom();
  }, [conversation && conversation.id, messages && messages.length]);
  useEffect(() => {
    if (pinned.current) toBottom();
  }, [live && live.content]);
  const cutAt = messages && conversation.cut ? messages.findIndex((m) => m.id === conversation.cut) : -1;
  return html`
    <div class="one-messages" id="messages" ref=${box} tabindex="-1"><div class="one-messages-inner" ref=${inner}>
      ${conversation && conversation.expired > 0 && html`
        <p class="one-notice" id="expired-notice">${`${conversation.expired} message${conversation.expired === 1 ? "" : "s"} of this chat expired and ${conversation.expired === 1 ? "was" : "were"} deleted (auto-delete).`}</p>`}
      ${messages && messages.length
        ? messages.map((m, i) => html`
            ${i === cutAt && html`<p class="one-notice" id="context-cut" key=${"cut" + m.id}>${`▲ ${i} earlier message${i === 1 ? "" : "s"} no longer fit ${model}'s context and ${i === 1 ? "was" : "were"} not sent with the last question`}</p>`}
            <${Message} key=${m.id} message=${m} content=${live && live.id === m.id ? live.content : m.content} flash=${flash} busy=${busy}
              onDelete=${onDelete} onEdit=${onEdit} onRegenerate=${onRegenerate} />`)
        : html`<p class="one-empty">Ask anything. Every answer comes with a signed receipt you can verify.</p>`}
    </div></div>`;
}

/** One message: an answer is markdown (sanitised), a question is plain text with its image; its actions below. */
function Message({ message: m, content, flash, busy, onDelete, onEdit, onRegenerate }) {
  const answer = useMemo(() => (m.role === "assistant" ? { __html: markdown(content) } : null), [m.role, content]);
  const [copied, setCopied] = useState("");
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(content || "");
      setCopied("Copied ✓");
    } catch {
      setCopied("Copy refused by the browser");
    }
    setTimeout(() => setCopied(""), 2000);
  };
  return html`
    <div class=${`one-msg one-${m.role}`} data-id=${m.id}>
      ${answer
        ? html`<div class="one-body" dangerouslySetInnerHTML=${answer} />`
        : html`<div class="one-body">${m.image && html`<img src=${m.image} class="one-thumb" alt="attached image" />`}${content}</div>`}
      <div class="one-meta">
        ${m.expires_at && html`<${Countdown} until=${m.expires_at} />`}
        ${m.receipt && html`<${ReceiptBadge} receipt=${{ hash: m.receipt, charge: m.charge }} answer=${flash ? null : m.content} />`}
        ${m.stopped && html`<span class="one-muted">stopped — not charged</span>`}
        ${m.error && html`<span class="one-error">${m.error}</span>`}
      </div>
      <div class="one-actions" hidden=${busy}>
        <button class="one-action" data-action="copy" onClick=${copy}>${copied || "Copy"}</button>
        ${m.role === "user" && html`<button class="one-action" data-action="edit" onClick=${() => onEdit(m)}>Edit</button>`}
        ${m.role === "assistant" && html`<button class="one-action" data-action="regenerate" onClick=${() => onRegenerate(m.id)}>Regenerate</button>`}
        <button class="one-action" data-action="delete" onClick=${() => onDelete(m.id)}>Delete</button>
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

function Composer({ draft, onDraft, onSend, draftField, attachment, onAttach, onDetach, messageTimer, onMessageTimer, note, funds, editing, onCancelEdit, streaming, onStop }) {
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
      ${editing && html`<p class="one-notice" id="editing-note">Editing a question: sending replaces it and everything after it.
        <button type="button" class="one-action" onClick=${onCancelEdit}>Cancel edit</button></p>`}
      <div class="one-attachment" id="attachment" hidden=${!attachment}>
        ${attachment && html`
          <img src=${attachment.url} class="one-thumb" alt=${attachment.name} />
          <button type="button" class="one-icon" onClick=${onDetach} title="Remove">×</button>`}
      </div>
      <textarea id="chat-input" class="one-textarea" rows="3" aria-label="Message" data-skip-target placeholder="Message…  (Enter sends, Shift+Enter for a new line)"
        ref=${draftField} value=${draft} onInput=${(e) => onDraft(e.target.value)} onKeyDown=${enterSends} />
      <p class=${note.warn ? "one-error" : "one-muted"} id="cost" role=${note.warn ? "alert" : null}>${note.text}</p>
      <div class="one-row">
        <button type="button" class="one-button one-secondary" id="attach-button" title="Attach an image" onClick=${() => fileInput.current.click()}>Attach image</button>
        <input type="file" accept="image/*" id="attach-input" hidden ref=${fileInput} onChange=${picked} />
        <${TimerSelect} id="message-timer" title="Delete this message after…" value=${messageTimer} onChange=${onMessageTimer}
          prefix="timer: " inherit="timer: conversation" />
        <span class="one-spacer" />
        <span class="one-muted" id="chat-balance" data-lane=${funds.lane || ""}>${funds.text}</span>
        <button type="button" class="one-button one-danger" id="stop-button" hidden=${!streaming} onClick=${onStop}>Stop</button>
        <button type="submit" class="one-button" id="send-button" hidden=${streaming}>Send</button>
      </div>
    </form>`;
}
