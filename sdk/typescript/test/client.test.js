// The client without a network: a fake coordinator (a fetch that signs real receipts with fresh Ed25519 keys) shows
// that the SDK records the exact JSON it sent, gathers a streamed answer, reads the x-one-* headers, and that
// verify-every-reply mode throws on a receipt that does not cover this request or this answer.

import assert from "node:assert/strict";
import { generateKeyPairSync, randomBytes, sign } from "node:crypto";
import { test } from "node:test";

import { One, ReceiptError, canonical, chatOutputDigest, embeddingOutputDigest, readAnchoredRoot, receiptHash, requestDigest, verifyChain } from "../src/index.js";

function keypair() {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  return { id: publicKey.export({ format: "der", type: "spki" }).subarray(-32).toString("hex"), privateKey };
}

/** A coordinator that answers chat (streamed or not) and embeddings with signed receipts; `tamper` forges them. */
function fakeCoordinator({ tamper = null } = {}) {
  const coordinator = keypair(), worker = keypair();
  let seq = 0, prev = "0".repeat(64);
  const receiptFor = (body, salt, outputDigest, kind) => {
    const usage = { input_tokens: 3, output_tokens: kind === "embedding" ? 0 : 2, images: 0 };
    const job = `job-${seq}`;
    const att = { v: 1, job, model: body.model, request_digest: requestDigest(body, salt), output_digest: outputDigest, usage };
    const receipt = {
      v: 1, seq, prev, ts: "2026-11-26T12:00:00.000Z", job, kind, lane: "included", account: "ab".repeat(32), model: body.model,
      request_digest: att.request_digest, output_digest: outputDigest, usage, charge: { unit: "credit", amount: 5 },
      worker: { id: worker.id, sig: sign(null, canonical(att), worker.privateKey).toString("hex") }, parent: null, coordinator: coordinator.id,
    };
    receipt.hash = receiptHash(receipt);
    receipt.sig = sign(null, Buffer.from(receipt.hash, "hex"), coordinator.privateKey).toString("hex");
    seq += 1;
    prev = receipt.hash;
    return tamper ? tamper(receipt) : receipt;
  };
  const headers = (type) => ({ "content-type": type, "x-one-lane": "included", "x-one-balance": "995", "x-one-balance-unit": "credit",
    "x-one-refresh-in": "3600", "x-ratelimit-remaining-requests": "59" });
  const fetch = async (url, init) => {
    const body = JSON.parse(init.body);
    const salt = randomBytes(16).toString("hex");
    if (String(url).endsWith("/embeddings")) {
      const vectors = body.input.map((_, i) => [0.5 + i, -0.25, 0.1]);
      const digest = embeddingOutputDigest(vectors);
      const data = body.encoding_format === "base64"
        ? vectors.map((v, index) => ({ object: "embedding", index, embedding: Buffer.from(Float32Array.from(v).buffer).toString("base64") }))
        : vectors.map((v, index) => ({ object: "embedding", index, embedding: v }));
      return new Response(JSON.stringify({ object: "list", data, model: body.model, receipt: receiptFor(body, salt, digest, "embedding"), request_salt: salt }),
        { headers: headers("application/json") });
    }
    const pieces = ["Hello", ", ", "world ✓"];
    const digest = chatOutputDigest([{ index: 0, content: pieces.join(""), tool_calls: null }]);
    const receipt = receiptFor(body, salt, digest, "chat");
    if (!body.stream) {
      return new Response(JSON.stringify({ id: "c1", object: "chat.completion", model: body.model, receipt, request_salt: salt,
        choices: [{ index: 0, message: { role: "assistant", content: pieces.join("") }, finish_reason: "stop" }] }), { headers: headers("application/json") });
    }
    const chunk = (choices, extra = {}) => `data: ${JSON.stringify({ id: "c1", object: "chat.completion.chunk", model: body.model, choices, ...extra })}\n\n`;
    const sse = pieces.map((p) => chunk([{ index: 0, delta: { content: p }, finish_reason: null }])).join("") +
      chunk([], { receipt, request_salt: salt }) + "data: [DONE]\n\n";
    return new Response(sse, { headers: headers("text/event-stream") });
  };
  return { fetch, coordinator };
}

test("a chat, a streamed chat and embeddings come back with receipts that check out, x-one headers read", async () => {
  const fake = fakeCoordinator();
  const one = new One("http://one.test/", { fetch: fake.fetch, verify: true, coordinator: fake.coordinator.id });
  const chat = await one.chat({ model: "tiny-chat", messages: [{ role: "user", content: "hi" }], max_tokens: 8 });
  assert.equal(chat.data.choices[0].message.content, "Hello, world ✓");
  assert.deepEqual(chat.verdict.checks, { hash: true, coordinator_sig: true, worker_sig: true, coordinator_key: true, request: true, output: true });
  assert.deepEqual(chat.sent, { model: "tiny-chat", messages: [{ role: "user", content: "hi" }], max_tokens: 8, stream: false });
  assert.equal(chat.account.lane, "included");
  assert.equal(chat.account.balance, 995);
  assert.equal(chat.account.unit, "credit");
  assert.equal(chat.account.refreshIn, 3600);
  assert.deepEqual(chat.account.rateLimits, { "x-ratelimit-remaining-requests": "59" });

  const stream = await one.chatStream({ model: "tiny-chat", messages: [{ role: "user", content: "hi" }] });
  const seen = [];
  for await (const chunk of stream) seen.push(chunk.choices[0]?.delta?.content ?? "");
  assert.deepEqual(seen, ["Hello", ", ", "world ✓", ""]);
  assert.equal(stream.text, "Hello, world ✓");
  assert.ok(stream.reply.verdict.ok, stream.reply.verdict.problems.join("; "));
  assert.equal(stream.reply.sent.stream, true);

  const floats = await one.embed({ model: "all-minilm-l6-v2", input: ["a", "b"] });
  assert.ok(floats.verdict.ok && floats.data.data.length === 2 && floats.sent.encoding_format === "float");
  const b64 = await one.embed({ model: "all-minilm-l6-v2", input: ["a"], encoding_format: "base64" });
  assert.ok(b64.verdict.ok, b64.verdict.problems.join("; "));
  const chain = verifyChain([chat.receipt, stream.reply.receipt, floats.receipt, b64.receipt]);
  assert.ok(chain.every((v) => v.ok));
  const concurrent = await Promise.all([1, 2, 3].map((n) => one.chat({ model: "tiny-chat", messages: [{ role: "user", content: `q${n}` }] })));
  concurrent.forEach((reply, i) => assert.ok(reply.verdict.ok && reply.sent.messages[0].content === `q${i + 1}`));
});

test("verify mode throws when a receipt does not cover this answer or was forged; without it the verdict says why", async () => {
  const lie = fakeCoordinator({ tamper: (rc) => ({ ...rc, output_digest: "00".repeat(32) }) });
  const strict = new One("http://one.test", { fetch: lie.fetch, verify: true });
  await assert.rejects(strict.chat({ model: "tiny-chat", messages: [{ role: "user", content: "hi" }] }), (err) => {
    assert.ok(err instanceof ReceiptError);
    assert.match(err.message, /hash check failed/);
    assert.match(err.message, /output_digest does not match the output received/);
    return true;
  });
  const stream = await strict.chatStream({ model: "tiny-chat", messages: [{ role: "user", content: "hi" }] });
  await assert.rejects((async () => { for await (const _ of stream); })(), ReceiptError);

  const lax = new One("http://one.test", { fetch: lie.fetch });
  const reply = await lax.chat({ model: "tiny-chat", messages: [{ role: "user", content: "hi" }] });
  assert.equal(reply.verdict.ok, false);
  assert.equal(reply.verdict.checks.output, false);

  const honest = fakeCoordinator();
  const one = new One("http://one.test", { fetch: honest.fetch });
  const good = await one.chat({ model: "tiny-chat", messages: [{ role: "user", content: "hi" }] });
  const digest = chatOutputDigest(good.data.choices.map((c) => ({ index: c.index, content: c.message.content })));
  assert.ok(one.check(good.receipt, good.requestSalt, good.sent, digest).ok);
  assert.equal(one.check(good.receipt, good.requestSalt, { ...good.sent, max_tokens: 9 }, digest).checks.request, false);
  assert.equal(one.check(good.receipt, "00".repeat(16), good.sent, digest).checks.request, false);
  assert.equal(one.check(null, null, null, digest).problems[0], "the reply carries no receipt");
  const pinned = new One("http://one.test", { fetch: honest.fetch, coordinator: "11".repeat(32), verify: true });
  await assert.rejects(pinned.chat({ model: "tiny-chat", messages: [{ role: "user", content: "hi" }] }), /coordinator_key check failed/);
});

test("the anchored root is read with one eth_call of roots(uint256)", async () => {
  let sent = null;
  const fetch = async (_url, init) => {
    sent = JSON.parse(init.body);
    return new Response(JSON.stringify({ jsonrpc: "2.0", id: 1, result: "0x" + "AB".repeat(32) }));
  };
  assert.equal(await readAnchoredRoot("http://chain.test", "0x" + "12".repeat(20), 3, { fetch }), "ab".repeat(32));
  assert.equal(sent.method, "eth_call");
  assert.equal(sent.params[0].data, "0xc2b40ae4" + "3".padStart(64, "0"));
});
