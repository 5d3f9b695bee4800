// A ONE client: the official `openai` client pointed at a ONE coordinator, plus what it does not know about: each
// reply's receipt and request salt, the `x-one-*` headers, and (optionally) every receipt checked on arrival against
// what you sent and what you got, without trusting the coordinator.

import OpenAI from "openai";

import {
  ReceiptError,
  Verdict,
  answerOf,
  chatOutputDigest,
  embeddingOutputDigest,
  imageOutputDigest,
  requestDigest,
  verifyReceipt,
} from "./receipts.js";

/**
 * The `x-one-*` headers of a reply: the lane it ran on, the balance left and its unit, when Included credits
 * refresh (seconds), and the rate limits (`x-ratelimit-*`).
 */
export class Account {
  constructor({ lane = null, balance = null, unit = null, refreshIn = null, rateLimits = {} } = {}) {
    /** @type {string | null} */ this.lane = lane;
    /** @type {number | null} */ this.balance = balance;
    /** @type {string | null} */ this.unit = unit;
    /** @type {number | null} */ this.refreshIn = refreshIn;
    /** @type {Record<string, string>} */ this.rateLimits = rateLimits;
  }

  /** @param {Headers} headers */
  static fromHeaders(headers) {
    const number = (name) => (/^-?\d+$/.test(headers.get(name) ?? "") ? Number(headers.get(name)) : null);
    const rateLimits = {};
    headers.forEach((value, name) => {
      if (name.toLowerCase().startsWith("x-ratelimit-")) rateLimits[name.toLowerCase()] = value;
    });
    return new Account({ lane: headers.get("x-one-lane"), balance: number("x-one-balance"), unit: headers.get("x-one-balance-unit"),
      refreshIn: number("x-one-refresh-in"), rateLimits });
  }
}

/** An API reply (the openai object), its receipt and salt, the account headers, and the verdict of the checks. */
export class Reply {
  constructor({ data, receipt, requestSalt, account, sent, verdict = null }) {
    this.data = data;
    /** @type {Record<string, any> | null} */ this.receipt = receipt;
    /** @type {string | null} */ this.requestSalt = requestSalt;
    /** @type {Account} */ this.account = account;
    /** The exact JSON body that was sent (what the request digest covers). */
    this.sent = sent;
    /** @type {Verdict | null} */ this.verdict = verdict;
  }
}

/**
 * `new One("http://127.0.0.1:3000", {apiKey})`; `one.openai` is the plain openai client for anything else. With
 * `verify: true` every reply's receipt is checked on arrival and a failure throws ReceiptError; `coordinator` pins
 * the coordinator's public key (hex) the receipts must be signed with.
 */
export class One {
  /**
   * @param {string} baseURL the coordinator, e.g. "http://127.0.0.1:3000"
   * @param {{apiKey?: string, verify?: boolean, coordinator?: string | null, timeout?: number, fetch?: typeof fetch}} [options]
   */
  constructor(baseURL, { apiKey, verify = false, coordinator = null, timeout = 120_000, fetch: innerFetch = globalThis.fetch } = {}) {
    this.verify = verify;
    this.coordinator = coordinator;
    /** The exact JSON each response's request carried, by the Response object (concurrent calls stay apart). */
    this._sent = new WeakMap();
    /** The last JSON body sent. */
    this.lastSent = null;
    const recording = async (url, init) => {
      let body = null;
      if (typeof init?.body === "string") {
        try {
          body = JSON.parse(init.body);
        } catch {
          body = null;
        }
      }
      this.lastSent = body;
      const response = await innerFetch(url, init);
      this._sent.set(response, body);
      return response;
    };
    this.openai = new OpenAI({ baseURL: baseURL.replace(/\/+$/, "") + "/v1", apiKey: apiKey ?? "none", maxRetries: 0, timeout, fetch: recording });
  }

  // ---- calls ----

  /** POST /v1/chat/completions (not streamed): tools, response_format and the rest as openai takes them. */
  chat(params, options) {
    return this._call(this.openai.chat.completions.create({ ...params, stream: false }, options),
      (body) => chatOutputDigest(body.choices.map(answerOf)));
  }

  /** A streamed chat: `for await` the chunks (openai's ChatCompletionChunk); `.reply` once the stream ended. */
  async chatStream(params, options) {
    const { data, response } = await this.openai.chat.completions.create({ ...params, stream: true }, options).withResponse();
    return new Streamed(this, data, response.headers, this._sent.get(response) ?? null);
  }

  /** POST /v1/completions (not streamed). */
  completion(params, options) {
    return this._call(this.openai.completions.create({ ...params, stream: false }, options),
      (body) => chatOutputDigest(body.choices.map(answerOf)));
  }

  /** A streamed completion, as chatStream. */
  async completionStream(params, options) {
    const { data, response } = await this.openai.completions.create({ ...params, stream: true }, options).withResponse();
    return new Streamed(this, data, response.headers, this._sent.get(response) ?? null);
  }

  /** POST /v1/embeddings, as float vectors unless you ask otherwise (the receipt's digest is over float32 values). */
  embed(params, options) {
    return this._call(this.openai.embeddings.create({ encoding_format: "float", ...params }, options),
      (body) => embeddingOutputDigest([...body.data].sort((a, b) => a.index - b.index).map((e) => e.embedding)));
  }

  /** POST /v1/images/generations as b64_json (the receipt's digest is over the PNG bytes). */
  images(params, options) {
    return this._call(this.openai.images.generate({ response_format: "b64_json", ...params }, options),
      (body) => imageOutputDigest(body.data.map((i) => Buffer.from(i.b64_json ?? "", "base64"))));
  }

  /** One non-streamed call: the output digest is computed from the reply's JSON exactly as it arrived. */
  async _call(promise, digest) {
    const { data, response } = await promise.withResponse();
    return this._finish(data, response.headers, data?.receipt ?? null, data?.request_salt ?? null, digest(data), this._sent.get(response) ?? null);
  }

  // ---- receipts ----

  _finish(data, headers, receipt, requestSalt, outputDigest, sent) {
    const reply = new Reply({ data, receipt, requestSalt, account: Account.fromHeaders(headers), sent });
    reply.verdict = this.check(receipt, requestSalt, sent, outputDigest);
    if (this.verify && !reply.verdict.ok) throw new ReceiptError(`the receipt does not check out: ${reply.verdict.problems.join("; ")}`, reply.verdict);
    return reply;
  }

  /**
   * The receipt's own checks (hash, both signatures, the pinned coordinator), then that it covers this request
   * (request_digest with the salt) and this output (output_digest).
   * @param {Record<string, any> | null} receipt @param {string | null} requestSalt
   * @param {Record<string, any> | null} sent the JSON body sent @param {string} outputDigest of what was received
   * @returns {Verdict}
   */
  check(receipt, requestSalt, sent, outputDigest) {
    if (!receipt || typeof receipt !== "object" || Object.keys(receipt).length === 0) {
      const verdict = new Verdict(null, "");
      verdict.fail("receipt", "the reply carries no receipt");
      return verdict;
    }
    const verdict = verifyReceipt(receipt, this.coordinator);
    if (requestSalt == null || sent == null) {
      verdict.fail("request", "no request salt or request body to check the request digest against");
    } else {
      let digest = null;
      try {
        digest = requestDigest(sent, requestSalt);
      } catch {
        digest = null; // a salt that is not hex covers nothing
      }
      verdict.checks.request = digest !== null && digest === receipt.request_digest;
      if (!verdict.checks.request) verdict.problems.push("request_digest does not match the request sent");
    }
    verdict.checks.output = outputDigest === receipt.output_digest;
    if (!verdict.checks.output) verdict.problems.push("output_digest does not match the output received");
    return verdict;
  }
}

/**
 * A streamed answer in progress: `for await` yields openai chunks; the answer is gathered so that, when the stream
 * ends, `reply` holds the receipt from the last chunk checked against the whole answer (in verify mode a failure
 * throws from the loop).
 */
export class Streamed {
  constructor(client, stream, headers, sent) {
    this._client = client;
    this.stream = stream;
    this.headers = headers;
    this.sent = sent;
    /** @type {Map<number, {index: number, content: string | null, tool_calls: any[] | null}>} */
    this._choices = new Map();
    this._last = null;
    /** @type {Reply | null} */
    this.reply = null;
  }

  async *[Symbol.asyncIterator]() {
    for await (const chunk of this.stream) {
      this._last = chunk;
      for (const c of chunk.choices ?? []) this._gather(c);
      yield chunk;
    }
    const last = this._last ?? {};
    this.reply = this._client._finish(this._last, this.headers, last.receipt ?? null, last.request_salt ?? null,
      chatOutputDigest(this._choices.values()), this.sent);
  }

  _gather(c) {
    const index = c.index ?? 0;
    let choice = this._choices.get(index);
    if (!choice) this._choices.set(index, (choice = { index, content: null, tool_calls: null }));
    const piece = c.delta ? c.delta.content : c.text; // chat chunks carry a delta, completion chunks text
    if (piece) choice.content = (choice.content ?? "") + piece;
    for (const call of c.delta?.tool_calls ?? []) {
      const calls = (choice.tool_calls ??= []);
      while (calls.length <= call.index) calls.push({ id: null, type: "function", function: { name: "", arguments: "" } });
      const gathered = calls[call.index];
      gathered.id = call.id || gathered.id;
      if (call.function) {
        gathered.function.name += call.function.name ?? "";
        gathered.function.arguments += call.function.arguments ?? "";
      }
    }
  }

  /** The answer gathered so far (all choices' text, in index order). */
  get text() {
    return [...this._choices.values()].sort((a, b) => a.index - b.index).map((c) => c.content ?? "").join("");
  }
}
