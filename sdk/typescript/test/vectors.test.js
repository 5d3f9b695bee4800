// Every shared vector in sdk/vectors: canonical JSON byte for byte, the reference's verdict for every receipts case
// (checks, problems, order), request and output digests, every inclusion proof of trees of 1-17 leaves, the proof cases.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import * as r from "../src/receipts.js";

const load = (name) => JSON.parse(readFileSync(new URL(`../../vectors/${name}`, import.meta.url), "utf8"));

test("canonical JSON matches every vector byte for byte", () => {
  const { cases } = load("canonical.json");
  assert.ok(cases.length >= 10);
  for (const c of cases) {
    // JSON.parse reads every number as an IEEE double, as the vectors ask ("large integers" included).
    assert.equal(r.canonicalString(JSON.parse(c.json)), c.canonical, c.name);
    assert.deepEqual(r.canonical(JSON.parse(c.json)), Buffer.from(c.canonical, "utf8"), c.name);
  }
});

test("receipt verdicts match the reference for every case", () => {
  const data = load("receipts.json");
  assert.ok(data.cases.length >= 25);
  for (const c of data.cases) {
    const verdicts = r.verifyChain(c.receipts).map((v) => v.toJSON());
    assert.deepStrictEqual(verdicts, c.verdict.receipts, c.name);
    // the checks in the same order as the reference's, too
    verdicts.forEach((v, i) => assert.deepEqual(Object.keys(v.checks), Object.keys(c.verdict.receipts[i].checks), c.name));
    assert.equal(verdicts.every((v) => v.ok), c.verdict.ok, c.name);
  }
});

test("pinning the coordinator key catches a chain signed by another", () => {
  const { cases, coordinator } = load("receipts.json");
  const good = cases.find((c) => c.name === "valid chain").receipts;
  assert.ok(r.verifyChain(good, coordinator).every((v) => v.ok && v.checks.coordinator_key));
  const other = r.verifyChain(good, "00".repeat(32));
  assert.ok(other.every((v) => !v.ok && v.problems.includes("coordinator_key check failed")));
});

test("request and output digests match", () => {
  const data = load("receipts.json");
  for (const q of data.requests) assert.equal(r.requestDigest(q.body, q.request_salt), q.request_digest);
  assert.ok(data.outputs.length >= 4);
  for (const out of data.outputs) {
    const digest = {
      chat: (o) => r.chatOutputDigest(o.choices),
      embedding: (o) => r.embeddingOutputDigest(o.vectors),
      image: (o) => r.imageOutputDigest(o.pngs_hex.map((p) => Buffer.from(p, "hex"))),
    }[out.kind](out);
    assert.equal(digest, out.output_digest, out.kind);
  }
  // An embedding's base64 form (encoding_format "base64") is the same float32 bytes.
  const emb = data.outputs.find((o) => o.kind === "embedding");
  const b64 = emb.vectors.map((v) => Buffer.from(Float32Array.from(v).buffer).toString("base64"));
  assert.equal(r.embeddingOutputDigest(b64), emb.output_digest);
});

test("inclusion proofs verify for trees of 1 to 17 leaves, and the proof cases match", () => {
  const data = load("proofs.json");
  assert.deepEqual(data.trees.map((t) => t.size), [...Array(17).keys()].map((i) => i + 1));
  for (const tree of data.trees) {
    const root = Buffer.from(tree.root, "hex");
    for (const proof of tree.proofs) {
      const path = proof.audit_path.map((p) => Buffer.from(p, "hex"));
      const leaf = Buffer.from(tree.leaves[proof.leaf_index], "hex");
      assert.ok(r.verifyInclusion(proof.leaf_index, tree.size, leaf, path, root), `${tree.size}.${proof.leaf_index}`);
      assert.ok(!r.verifyInclusion(proof.leaf_index, tree.size, Buffer.alloc(32), path, root));
    }
  }
  for (const c of data.proofs) assert.deepStrictEqual(r.verifyProof(c.proof), c.checks, c.name);
  const valid = data.proofs.find((c) => c.name === "valid").proof;
  assert.equal(r.verifyProof(valid, { anchoredRoot: "0x" + valid.head.root }).anchored, true);
  assert.equal(r.verifyProof(valid, { anchoredRoot: "00".repeat(32) }).anchored, false);
  assert.equal(r.verifyProof(valid, { coordinator: valid.head.coordinator }).coordinator_key, true);
});

test("receipts are read from a list, one receipt, {receipts}, JSON lines and replies carrying one", () => {
  const good = load("receipts.json").cases[0].receipts;
  assert.deepEqual(r.parseReceipts(JSON.stringify(good)), good);
  assert.deepEqual(r.parseReceipts(JSON.stringify(good[0])), [good[0]]);
  assert.deepEqual(r.parseReceipts(JSON.stringify({ receipts: good })), good);
  assert.deepEqual(r.parseReceipts(good.map((x) => JSON.stringify(x)).join("\n") + "\n"), good);
  assert.deepEqual(r.parseReceipts(JSON.stringify({ id: "chatcmpl-1", receipt: good[1], request_salt: "00" })), [good[1]]);
  assert.throws(() => r.parseReceipts("[1, 2]"));
  assert.throws(() => r.parseReceipts("{not json"));
});

test("malformed receipts fail the shape check instead of throwing", () => {
  const good = load("receipts.json").cases[0].receipts[2];
  const { hash, ...noHash } = good;
  assert.deepEqual(r.verifyReceipt(noHash).problems, ["missing fields: hash"]);
  const bad = r.verifyReceipt({ ...good, hash: "zz" + good.hash.slice(2) });
  assert.equal(bad.ok, false);
  assert.match(bad.problems.at(-1), /^malformed receipt: non-hexadecimal number/);
  assert.equal(r.verifyReceipt({ ...good, usage: 5 }).checks.shape, false);
  assert.equal(r.verifyReceipt({ ...good, worker: { id: good.worker.id } }).checks.shape, false);
  assert.equal(r.ed25519Ok("not hex", Buffer.alloc(1), "00"), false);
  assert.throws(() => r.canonicalString("\ud800 lone"));
  assert.throws(() => r.canonicalString(NaN));
});
