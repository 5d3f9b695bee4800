#!/usr/bin/env node
// node examples/e2e.js URL: a streamed chat and an embedding through the SDK against a live ONE coordinator, each
// receipt checked here (request digest with request_salt against the exact JSON sent, output digest against what
// came back, hash, both signatures), and tampered copies rejected. Prints one JSON object (tests/sdk asserts on it).

import { One, ReceiptError, chatOutputDigest, verifyChain, verifyReceipt } from "../src/index.js";

const url = process.argv[2] ?? "http://127.0.0.1:3000";
const one = new One(url, { verify: true });

const stream = await one.chatStream({ model: "tiny-chat", messages: [{ role: "user", content: "hello from the TypeScript SDK" }], max_tokens: 24 });
const pieces = [];
for await (const chunk of stream) if (chunk.choices?.length) pieces.push(chunk.choices[0].delta?.content ?? "");
const chat = stream.reply;

const embedded = await one.embed({ model: "all-minilm-l6-v2", input: ["a receipt", "a worker"] });

// A copy with one charge changed fails its own checks; the genuine receipt does not cover another request or answer.
const forged = structuredClone(chat.receipt);
forged.charge.amount += 1;
const forgedVerdict = verifyReceipt(forged);
const otherRequest = one.check(chat.receipt, chat.requestSalt, { ...chat.sent, max_tokens: 25 }, chatOutputDigest([{ index: 0, content: stream.text }]));
const otherAnswer = one.check(chat.receipt, chat.requestSalt, chat.sent, chatOutputDigest([{ index: 0, content: stream.text + "!" }]));
let thrown = null;
try {
  one._finish(null, stream.headers, forged, chat.requestSalt, chatOutputDigest([{ index: 0, content: stream.text }]), chat.sent);
} catch (err) {
  thrown = err instanceof ReceiptError ? err.message : `not a ReceiptError: ${err}`;
}

const summary = (reply) => ({ ok: reply.verdict.ok, checks: reply.verdict.checks, problems: reply.verdict.problems, lane: reply.account.lane,
  balance: reply.account.balance, unit: reply.account.unit, kind: reply.receipt?.kind, hash: reply.receipt?.hash });
console.log(JSON.stringify({
  chat: { ...summary(chat), pieces: pieces.filter(Boolean).length, text: stream.text, sent_stream: chat.sent?.stream === true },
  embedding: { ...summary(embedded), vectors: embedded.data.data.length, dims: embedded.data.data[0].embedding.length },
  chain_each_ok: [chat.receipt, embedded.receipt].every((rc) => verifyChain([rc]).every((v) => v.ok)),
  forged: { ok: forgedVerdict.ok, problems: forgedVerdict.problems },
  other_request: { ok: otherRequest.ok, request: otherRequest.checks.request },
  other_answer: { ok: otherAnswer.ok, output: otherAnswer.checks.output },
  verify_mode_threw: thrown,
  receipts: { chat: chat.receipt, embedding: embedded.receipt, forged },
}));
