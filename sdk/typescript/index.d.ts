// Types for "@one-network/sdk" (plain JavaScript with these declarations; no build step).

import type OpenAI from "openai";
import type { Stream } from "openai/streaming";

import type { Receipt, Verdict } from "./receipts.js";

export * from "./receipts.js";

export declare const VERSION: string;

/** The `x-one-*` headers of a reply: lane, balance and its unit, seconds until Included credits refresh, rate limits. */
export declare class Account {
  lane: string | null;
  balance: number | null;
  unit: string | null;
  refreshIn: number | null;
  rateLimits: Record<string, string>;
  static fromHeaders(headers: Headers): Account;
}

/** An API reply (the openai object), its receipt and salt, the account headers, and the verdict of the checks. */
export declare class Reply<T = unknown> {
  data: T;
  receipt: Receipt | null;
  requestSalt: string | null;
  account: Account;
  /** The exact JSON body that was sent (what the request digest covers). */
  sent: Record<string, any> | null;
  verdict: Verdict;
}

/** A streamed answer: `for await` the chunks; `reply` is set (and checked) once the stream ended. */
export declare class Streamed<Chunk> implements AsyncIterable<Chunk> {
  stream: Stream<Chunk>;
  headers: Headers;
  sent: Record<string, any> | null;
  reply: Reply<Chunk> | null;
  readonly text: string;
  [Symbol.asyncIterator](): AsyncIterator<Chunk>;
}

export interface OneOptions {
  apiKey?: string;
  /** Check every reply's receipt on arrival and throw ReceiptError when it does not check out. */
  verify?: boolean;
  /** Pin the coordinator's Ed25519 public key (hex). */
  coordinator?: string | null;
  /** Milliseconds (default 120000). */
  timeout?: number;
  fetch?: typeof fetch;
}

type Options = OpenAI.RequestOptions;

/** The official openai client pointed at a ONE coordinator, plus receipts, request salts, x-one-* headers and checks. */
export declare class One {
  constructor(baseURL: string, options?: OneOptions);
  /** The plain openai client (baseURL + "/v1"). */
  openai: OpenAI;
  verify: boolean;
  coordinator: string | null;
  lastSent: Record<string, any> | null;
  chat(params: Omit<OpenAI.Chat.ChatCompletionCreateParamsNonStreaming, "stream">, options?: Options): Promise<Reply<OpenAI.Chat.ChatCompletion>>;
  chatStream(params: Omit<OpenAI.Chat.ChatCompletionCreateParamsStreaming, "stream">, options?: Options): Promise<Streamed<OpenAI.Chat.ChatCompletionChunk>>;
  completion(params: Omit<OpenAI.CompletionCreateParamsNonStreaming, "stream">, options?: Options): Promise<Reply<OpenAI.Completion>>;
  completionStream(params: Omit<OpenAI.CompletionCreateParamsStreaming, "stream">, options?: Options): Promise<Streamed<OpenAI.Completion>>;
  embed(params: OpenAI.EmbeddingCreateParams, options?: Options): Promise<Reply<OpenAI.CreateEmbeddingResponse>>;
  images(params: OpenAI.ImageGenerateParams, options?: Options): Promise<Reply<OpenAI.ImagesResponse>>;
  /** The receipt's own checks, then that it covers this request (with the salt) and this output. */
  check(receipt: Receipt | null, requestSalt: string | null, sent: Record<string, any> | null, outputDigest: string): Verdict;
}

/** EpochAnchor.roots(epoch) read over JSON-RPC (eth_call), as 64 hex digits: pass it to verifyProof as anchoredRoot. */
export declare function readAnchoredRoot(rpcUrl: string, address: string, epoch: number | bigint, options?: { fetch?: typeof fetch }): Promise<string>;
