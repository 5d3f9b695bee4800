// Check ONE receipts with nothing but their bytes: RFC 8785 canonical JSON, SHA-256, Ed25519 and RFC 9162 Merkle
// proofs, all from node:crypto. The same checks, check names and problem texts as the Python reference
// (sdk/python/src/one_sdk/receipts.py and the network's `one verify`); the shared vectors in sdk/vectors keep them in step.
//
// A receipt's `hash` is sha256 of the JCS form of the receipt without `hash` and `sig`; the coordinator signs that
// hash; the worker signs the JCS form of its attestation, which the receipt restates; each receipt's `prev` is the
// hash of the one before it (seq runs on), the first links to 64 zeros.

import { createHash, createPublicKey, verify as cryptoVerify } from "node:crypto";

/** The version of the receipt and attestation forms this package checks. */
export const RECEIPT_VERSION = 1;
export const GENESIS_PREV = "0".repeat(64);
const ENVELOPE_KEYS = new Set(["hash", "sig"]);
const USAGE_KEYS = ["input_tokens", "output_tokens", "images"];
const OPTIONAL_COMMITMENTS = ["logprobs_digest", "sampling_seed", "tokens_digest"];
export const REQUIRED = ["v", "seq", "prev", "ts", "job", "kind", "lane", "account", "model", "request_digest",
  "output_digest", "usage", "charge", "worker", "parent", "coordinator", "hash", "sig"];

/** A reply whose receipt does not check out (verify-every-reply mode throws it). */
export class ReceiptError extends Error {
  /** @param {string} message @param {Verdict | null} [verdict] */
  constructor(message, verdict = null) {
    super(message);
    this.name = "ReceiptError";
    this.verdict = verdict;
  }
}

// ---- Python-like helpers: the reference's verdicts (problem texts included) depend on Python's semantics ----

/** Python's type name of a JSON value (for error texts). */
function pyType(value) {
  if (value === null || value === undefined) return "NoneType";
  if (typeof value === "boolean") return "bool";
  if (typeof value === "number") return Number.isInteger(value) ? "int" : "float";
  if (typeof value === "string") return "str";
  return Array.isArray(value) ? "list" : "dict";
}

/** str() of a JSON value as Python prints it. */
export function pyStr(value) {
  if (value === null || value === undefined) return "None";
  if (typeof value === "boolean") return value ? "True" : "False";
  if (typeof value === "string") return value;
  if (typeof value === "number") return String(value);
  return JSON.stringify(value);
}

/** Python's == on JSON values (bool is an int there; a missing key reads as None). */
function pyEq(a, b) {
  a = a === undefined ? null : a;
  b = b === undefined ? null : b;
  const numeric = (x) => typeof x === "number" || typeof x === "boolean";
  if (numeric(a) && numeric(b)) return Number(a) === Number(b);
  if (a === null || b === null || typeof a !== "object" || typeof b !== "object") return a === b;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === b.length && a.every((x, i) => pyEq(x, b[i]));
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && pyEq(a[k], b[k]));
}

/** A receipt's field as Python's dict.get reads it (missing -> null). */
const get = (obj, key) => (Object.hasOwn(obj, key) ? obj[key] : null);

const isDict = (x) => x !== null && typeof x === "object" && !Array.isArray(x);

/** Python's `d[key]` on a JSON value: KeyError / TypeError with Python's texts. */
function item(obj, key) {
  if (isDict(obj)) {
    if (!Object.hasOwn(obj, key)) throw new TypeError(`'${key}'`);
    return obj[key];
  }
  if (typeof obj === "string" || Array.isArray(obj)) throw new TypeError(`${pyType(obj) === "str" ? "string" : "list"} indices must be integers or slices, not str`);
  throw new TypeError(`'${pyType(obj)}' object is not subscriptable`);
}

const HEX = /^[0-9a-fA-F]*$/;

/** bytes.fromhex, strictly (Buffer.from(x, "hex") silently stops at the first bad character). */
export function fromHex(text) {
  if (typeof text !== "string") throw new TypeError(`fromhex() argument must be str, not ${pyType(text)}`);
  const compact = text.replace(/[ \t\n\r\v\f]/g, "");
  if (!HEX.test(compact) || compact.length % 2) {
    const bad = [...text].findIndex((c) => !/[0-9a-fA-F \t\n\r\v\f]/.test(c));
    throw new TypeError(`non-hexadecimal number found in fromhex() arg at position ${bad >= 0 ? bad : text.length}`);
  }
  return Buffer.from(compact, "hex");
}

// ---- RFC 8785 (JCS) ----

/**
 * The RFC 8785 canonical text of a JSON value: object keys sorted by UTF-16 code units, no whitespace, numbers in
 * ECMAScript's shortest round-trip form (JSON.stringify's), strings escaped as JSON.stringify does.
 * @param {unknown} value
 * @returns {string}
 */
export function canonicalString(value) {
  if (value === null) return "null";
  switch (typeof value) {
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isFinite(value)) throw new TypeError(`RFC 8785 has no form for ${value}`);
      return JSON.stringify(value); // -0 -> "0", 1e21 -> "1e+21", as ECMAScript's Number.prototype.toString
    case "string":
      if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(value)) throw new TypeError("RFC 8785: lone surrogate in a string");
      return JSON.stringify(value);
    case "object": {
      if (Array.isArray(value)) return "[" + value.map(canonicalString).join(",") + "]";
      const keys = Object.keys(value).filter((k) => value[k] !== undefined).sort(); // default sort: UTF-16 code units
      return "{" + keys.map((k) => canonicalString(k) + ":" + canonicalString(value[k])).join(",") + "}";
    }
    default:
      throw new TypeError(`not a JSON value: ${typeof value}`);
  }
}

/** RFC 8785 (JCS) bytes of a JSON value. @param {unknown} value @returns {Buffer} */
export function canonical(value) {
  return Buffer.from(canonicalString(value), "utf8");
}

/** @param {Uint8Array | string} data @returns {string} */
export function sha256hex(data) {
  return createHash("sha256").update(data).digest("hex");
}

/** sha256hex(JCS(receipt without `hash` and `sig`)): also an epoch head's hash. */
export function receiptHash(receipt) {
  const body = {};
  for (const k of Object.keys(receipt)) if (!ENVELOPE_KEYS.has(k)) body[k] = receipt[k];
  return sha256hex(canonical(body));
}

/** The statement the worker signed, rebuilt from the receipt that restates it. */
export function attestationOf(receipt) {
  const usage = item(receipt, "usage");
  if (!isDict(usage)) throw new TypeError(`'${pyType(usage)}' object has no attribute 'get'`);
  const att = {
    v: RECEIPT_VERSION, job: item(receipt, "job"), model: item(receipt, "model"), request_digest: item(receipt, "request_digest"),
    output_digest: item(receipt, "output_digest"), usage: Object.fromEntries(USAGE_KEYS.map((k) => [k, Object.hasOwn(usage, k) ? usage[k] : 0])),
  };
  for (const key of OPTIONAL_COMMITMENTS) if (get(receipt, key) !== null) att[key] = receipt[key];
  return att;
}

const SPKI_ED25519 = Buffer.from("302a300506032b6570032100", "hex");
const keyCache = new Map();

function publicKey(hex) {
  let key = keyCache.get(hex);
  if (!key) {
    const raw = fromHex(hex);
    if (raw.length !== 32) throw new TypeError("an Ed25519 public key is 32 bytes");
    key = createPublicKey({ key: Buffer.concat([SPKI_ED25519, raw]), format: "der", type: "spki" });
    if (keyCache.size > 1024) keyCache.clear();
    keyCache.set(hex, key);
  }
  return key;
}

/** Does `signatureHex` sign `message` under the Ed25519 key `publicHex`? False for anything malformed. */
export function ed25519Ok(publicHex, message, signatureHex) {
  try {
    const sig = fromHex(signatureHex);
    if (sig.length !== 64) return false;
    return cryptoVerify(null, message, publicKey(publicHex), sig);
  } catch {
    return false;
  }
}

/** What a receipt's request_digest must be for the request you sent: sha256hex(salt || JCS(body)). */
export function requestDigest(body, requestSalt) {
  return sha256hex(Buffer.concat([fromHex(requestSalt), canonical(body)]));
}

/**
 * Text answers (chat, completion, vision): content and tool calls per choice, in index order.
 * @param {Iterable<{index?: number, content?: string | null, tool_calls?: unknown}>} choices
 */
export function chatOutputDigest(choices) {
  const ordered = [...choices].map((c, i) => [c, i]).sort(([a, i], [b, j]) => ((a.index ?? 0) - (b.index ?? 0)) || i - j).map(([c]) => c);
  return sha256hex(canonical({ choices: ordered.map((c) => ({ content: c.content ?? null, tool_calls: c.tool_calls ?? null })) }));
}

/** One choice of a reply's JSON (a chat `message`, or a completion's `text`) as the output digest reads it. */
export function answerOf(choice) {
  const message = choice.message;
  if (isDict(message)) return { index: choice.index ?? 0, content: message.content ?? null, tool_calls: message.tool_calls ?? null };
  return { index: choice.index ?? 0, content: choice.text ?? null, tool_calls: null };
}

/**
 * Embeddings: the vectors as float32 little-endian, concatenated. A vector may also be given as the base64 of
 * those bytes (what `encoding_format: "base64"` returns).
 * @param {Iterable<Iterable<number> | string>} vectors
 */
export function embeddingOutputDigest(vectors) {
  const h = createHash("sha256");
  for (const vector of vectors) {
    if (typeof vector === "string") {
      h.update(Buffer.from(vector, "base64"));
      continue;
    }
    const values = Float32Array.from(vector);
    const bytes = Buffer.alloc(values.length * 4);
    values.forEach((v, i) => bytes.writeFloatLE(v, i * 4));
    h.update(bytes);
  }
  return h.digest("hex");
}

/** Images: JCS list of each PNG's sha256 hex. @param {Iterable<Uint8Array>} pngs */
export function imageOutputDigest(pngs) {
  return sha256hex(canonical([...pngs].map((png) => sha256hex(png))));
}

/** One receipt's checks (name -> passed) and what failed, in words. */
export class Verdict {
  /** @param {unknown} seq @param {string} hash */
  constructor(seq, hash) {
    this.seq = seq;
    this.hash = hash;
    /** @type {Record<string, boolean>} */
    this.checks = {};
    /** @type {string[]} */
    this.problems = [];
  }

  get ok() {
    return Object.values(this.checks).every(Boolean) && this.problems.length === 0;
  }

  fail(check, problem = null) {
    this.checks[check] = false;
    this.problems.push(problem ?? `${check} check failed`);
  }

  toJSON() {
    return { seq: this.seq, hash: this.hash, ok: this.ok, checks: this.checks, problems: this.problems };
  }
}

/**
 * Hash and both signatures of one receipt (and the coordinator key, when pinned).
 * @param {Record<string, any>} receipt
 * @param {string | null} [coordinator]
 */
export function verifyReceipt(receipt, coordinator = null) {
  const verdict = new Verdict(get(receipt, "seq"), pyStr(Object.hasOwn(receipt, "hash") ? receipt.hash : ""));
  const missing = REQUIRED.filter((k) => !Object.hasOwn(receipt, k));
  if (missing.length) {
    verdict.fail("shape", `missing fields: ${missing.join(", ")}`);
    return verdict;
  }
  try {
    verdict.checks.hash = receiptHash(receipt) === receipt.hash;
    verdict.checks.coordinator_sig = ed25519Ok(receipt.coordinator, fromHex(receipt.hash), receipt.sig);
    verdict.checks.worker_sig = ed25519Ok(item(item(receipt, "worker"), "id"), canonical(attestationOf(receipt)), item(receipt.worker, "sig"));
  } catch (exc) {
    verdict.fail("shape", `malformed receipt: ${exc.message}`);
    return verdict;
  }
  if (coordinator !== null && coordinator !== undefined) verdict.checks.coordinator_key = pyEq(receipt.coordinator, coordinator);
  for (const [name, passed] of Object.entries(verdict.checks)) if (!passed) verdict.problems.push(`${name} check failed`);
  return verdict;
}

function seqOf(receipt) {
  const seq = get(receipt, "seq");
  return Number.isInteger(seq) ? seq : null;
}

/**
 * Each receipt, then the link from each to the one before it (in seq order); one coordinator key signs them all:
 * the pinned one, else the first receipt's.
 * @param {Iterable<Record<string, any>>} receipts
 * @param {string | null} [coordinator]
 * @returns {Verdict[]}
 */
export function verifyChain(receipts, coordinator = null) {
  const key = (r) => (seqOf(r) === null ? -1 : seqOf(r));
  const ordered = [...receipts].sort((a, b) => key(a) - key(b)); // stable, as Python's sorted
  const pinned = coordinator || (ordered.length ? get(ordered[0], "coordinator") : null);
  const verdicts = [];
  let previous = null;
  for (const receipt of ordered) {
    const verdict = verifyReceipt(receipt, pinned);
    if (previous !== null) {
      const seq = seqOf(receipt), before = seqOf(previous);
      const linked = seq !== null && before !== null && seq === before + 1 && pyEq(get(receipt, "prev"), get(previous, "hash"));
      verdict.checks.chain_link = linked;
      if (!linked) verdict.problems.push(`does not link to receipt seq ${pyStr(get(previous, "seq"))}`);
    } else if (pyEq(get(receipt, "seq"), 0)) {
      verdict.checks.chain_link = pyEq(get(receipt, "prev"), GENESIS_PREV);
      if (!verdict.checks.chain_link) verdict.problems.push("first receipt must link to the genesis value");
    }
    verdicts.push(verdict);
    previous = receipt;
  }
  return verdicts;
}

/** Python's str.splitlines separators. */
const LINES = /\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]/;

/**
 * Receipts from text: a JSON list, one receipt, {"receipts": [...]}, JSON lines, or API replies carrying one.
 * @param {string} text
 * @returns {Record<string, any>[]}
 */
export function parseReceipts(text) {
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    data = text.split(LINES).filter((line) => line.trim()).map((line) => JSON.parse(line));
  }
  if (isDict(data)) {
    data = Object.hasOwn(data, "receipts") ? data.receipts : [data];
    if (isDict(data)) data = [data];
  }
  if (!Array.isArray(data) || !data.every(isDict)) throw new TypeError("expected receipts as a JSON object, list, or JSON lines");
  return data.map((r) => (isDict(r.receipt) ? r.receipt : r));
}

// ---- inclusion in a settlement epoch (RFC 9162) ----

const leafHash = (receiptHashBytes) => createHash("sha256").update(Buffer.from([0])).update(receiptHashBytes).digest();
const nodeHash = (left, right) => createHash("sha256").update(Buffer.from([1])).update(left).update(right).digest();

/**
 * RFC 9162 section 2.1.3.2: does `leaf` (a receipt hash) sit at `index` of the tree of `size` leaves with `root`?
 * @param {number} index @param {number} size @param {Uint8Array} leaf @param {Uint8Array[]} path @param {Uint8Array} root
 */
export function verifyInclusion(index, size, leaf, path, root) {
  if (!(Number.isInteger(index) && Number.isInteger(size) && index >= 0 && index < size)) return false;
  let fn = index, sn = size - 1, r = leafHash(leaf);
  const odd = (x) => x % 2 === 1;
  for (const p of path) {
    if (sn === 0) return false;
    if (odd(fn) || fn === sn) {
      r = nodeHash(p, r);
      while (!odd(fn) && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && Buffer.compare(r, Buffer.from(root)) === 0;
}

/**
 * A receipt's proof (GET /one/receipts/{hash}/proof): the signed epoch head, and the audit path to its root; with
 * `anchoredRoot` (read from the EpochAnchor contract, e.g. with `readAnchoredRoot`), that the root is the one anchored on chain.
 * @param {Record<string, any>} proof
 * @param {{coordinator?: string | null, anchoredRoot?: string | null}} [options]
 * @returns {Record<string, boolean>}
 */
export function verifyProof(proof, { coordinator = null, anchoredRoot = null } = {}) {
  const head = item(proof, "head");
  const checks = {
    head_hash: receiptHash(head) === get(head, "hash"),
    head_sig: ed25519Ok(item(head, "coordinator"), fromHex(item(head, "hash")), item(head, "sig")),
    inclusion: pyEq(item(proof, "tree_size"), item(head, "size")) && verifyInclusion(
      item(proof, "leaf_index"), item(proof, "tree_size"), fromHex(item(proof, "receipt")),
      item(proof, "audit_path").map(fromHex), fromHex(item(head, "root"))),
  };
  if (coordinator !== null && coordinator !== undefined) checks.coordinator_key = pyEq(head.coordinator, coordinator);
  if (anchoredRoot !== null && anchoredRoot !== undefined) checks.anchored = anchoredRoot.replace(/^0x/, "") === head.root;
  return checks;
}
