// Types for "@one-network/sdk/receipts" (src/receipts.js): the checks alone, node:crypto only.

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
/** A receipt as the coordinator returns it (see the network's receipt format). */
export type Receipt = Record<string, any>;

export declare const RECEIPT_VERSION: 1;
export declare const GENESIS_PREV: string;
export declare const REQUIRED: string[];

/** A reply whose receipt does not check out (verify-every-reply mode throws it). */
export declare class ReceiptError extends Error {
  constructor(message: string, verdict?: Verdict | null);
  verdict: Verdict | null;
}

/** One receipt's checks (name -> passed) and what failed, in words. */
export declare class Verdict {
  constructor(seq: unknown, hash: string);
  seq: unknown;
  hash: string;
  checks: Record<string, boolean>;
  problems: string[];
  readonly ok: boolean;
  fail(check: string, problem?: string | null): void;
  toJSON(): { seq: unknown; hash: string; ok: boolean; checks: Record<string, boolean>; problems: string[] };
}

/** RFC 8785 (JCS) text of a JSON value. */
export declare function canonicalString(value: unknown): string;
/** RFC 8785 (JCS) bytes of a JSON value. */
export declare function canonical(value: unknown): Buffer;
export declare function sha256hex(data: Uint8Array | string): string;
/** bytes.fromhex, strictly. */
export declare function fromHex(text: string): Buffer;
/** str() of a JSON value as Python prints it (the verify command's `seq N`). */
export declare function pyStr(value: unknown): string;
/** sha256hex(JCS(receipt without `hash` and `sig`)): also an epoch head's hash. */
export declare function receiptHash(receipt: Receipt): string;
/** The statement the worker signed, rebuilt from the receipt that restates it. */
export declare function attestationOf(receipt: Receipt): Record<string, Json>;
export declare function ed25519Ok(publicHex: string, message: Uint8Array, signatureHex: string): boolean;
/** sha256hex(salt || JCS(body)): what a receipt's request_digest must be for the request you sent. */
export declare function requestDigest(body: unknown, requestSalt: string): string;
export interface Answer { index?: number; content?: string | null; tool_calls?: unknown[] | null }
/** Text answers (chat, completion, vision): content and tool calls per choice, in index order. */
export declare function chatOutputDigest(choices: Iterable<Answer>): string;
/** One choice of a reply's JSON (a chat `message`, or a completion's `text`) as the output digest reads it. */
export declare function answerOf(choice: Record<string, any>): Required<Answer>;
/** Embeddings: float32 little-endian, concatenated (a base64 string is taken as those bytes). */
export declare function embeddingOutputDigest(vectors: Iterable<Iterable<number> | string>): string;
/** Images: JCS list of each PNG's sha256 hex. */
export declare function imageOutputDigest(pngs: Iterable<Uint8Array>): string;
/** Hash and both signatures of one receipt (and the coordinator key, when pinned). */
export declare function verifyReceipt(receipt: Receipt, coordinator?: string | null): Verdict;
/** Each receipt, then the links between consecutive ones in seq order; one coordinator signs them all. */
export declare function verifyChain(receipts: Iterable<Receipt>, coordinator?: string | null): Verdict[];
/** Receipts from text: a JSON list, one receipt, {"receipts": [...]}, JSON lines, or API replies carrying one. */
export declare function parseReceipts(text: string): Receipt[];
/** RFC 9162: does `leaf` (a receipt hash) sit at `index` of the tree of `size` leaves with `root`? */
export declare function verifyInclusion(index: number, size: number, leaf: Uint8Array, path: Uint8Array[], root: Uint8Array): boolean;
/** A receipt's proof (GET /one/receipts/{hash}/proof) against its signed epoch head (and the anchored root, if given). */
export declare function verifyProof(
  proof: Record<string, any>,
  options?: { coordinator?: string | null; anchoredRoot?: string | null },
): Record<string, boolean>;
