//! Check ONE receipts with nothing but their bytes: RFC 8785 canonical JSON, SHA-256, Ed25519 and RFC 9162 Merkle
//! proofs; a port of `sdk/python/src/one_sdk/receipts.py` (same check names, same problems in the same words and
//! order; the shared vectors in `sdk/vectors` keep them in step).
//!
//! A receipt's `hash` is sha256 of the JCS form of the receipt without `hash` and `sig`; the coordinator signs
//! that hash; the worker signs the JCS form of its attestation, which the receipt restates; each receipt's `prev`
//! is the hash of the one before it (seq runs on), the first links to 64 zeros.

use crate::canonical::canonical;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// The version of the receipt and attestation forms this crate checks.
pub const RECEIPT_VERSION: i64 = 1;
/// What the first receipt's `prev` is.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const ENVELOPE_KEYS: [&str; 2] = ["hash", "sig"];
const USAGE_KEYS: [&str; 3] = ["input_tokens", "output_tokens", "images"];
const OPTIONAL_COMMITMENTS: [&str; 3] = ["logprobs_digest", "sampling_seed", "tokens_digest"];
const REQUIRED: [&str; 18] = [
    "v",
    "seq",
    "prev",
    "ts",
    "job",
    "kind",
    "lane",
    "account",
    "model",
    "request_digest",
    "output_digest",
    "usage",
    "charge",
    "worker",
    "parent",
    "coordinator",
    "hash",
    "sig",
];

/// A receipt: a JSON object.
pub type Receipt = Map<String, Value>;

/// Lowercase hex of bytes.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Bytes of hex text (either case); Err when it is not hex.
pub fn from_hex(text: &str) -> Result<Vec<u8>, String> {
    let t = text.as_bytes();
    if t.len() % 2 != 0 {
        return Err(format!("odd-length hex: {text:.20}"));
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(format!("non-hexadecimal number found in fromhex() arg: {text:.20}")),
    };
    t.chunks(2).map(|p| Ok(nib(p[0])? << 4 | nib(p[1])?)).collect()
}

pub fn sha256hex(data: &[u8]) -> String {
    to_hex(&Sha256::digest(data))
}

/// sha256hex(JCS(receipt without `hash` and `sig`)): also an epoch head's hash.
pub fn receipt_hash(receipt: &Receipt) -> Result<String, String> {
    let mut body = receipt.clone();
    for k in ENVELOPE_KEYS {
        body.remove(k);
    }
    Ok(sha256hex(&canonical(&Value::Object(body))?))
}

/// The statement the worker signed, rebuilt from the receipt that restates it.
pub fn attestation_of(receipt: &Receipt) -> Result<Value, String> {
    let get = |k: &str| receipt.get(k).cloned().ok_or_else(|| format!("'{k}'"));
    let usage = receipt.get("usage").and_then(Value::as_object).ok_or("'usage' is not an object")?;
    let mut u = Map::new();
    for k in USAGE_KEYS {
        u.insert(k.into(), usage.get(k).cloned().unwrap_or(json!(0)));
    }
    let mut att = Map::new();
    att.insert("v".into(), json!(RECEIPT_VERSION));
    for k in ["job", "model", "request_digest", "output_digest"] {
        att.insert(k.into(), get(k)?);
    }
    att.insert("usage".into(), Value::Object(u));
    for k in OPTIONAL_COMMITMENTS {
        if let Some(v) = receipt.get(k).filter(|v| !v.is_null()) {
            att.insert(k.into(), v.clone());
        }
    }
    Ok(Value::Object(att))
}

/// Does `signature_hex` sign `message` under the Ed25519 key `public_hex`? (false for anything malformed)
pub fn ed25519_ok(public_hex: &str, message: &[u8], signature_hex: &str) -> bool {
    let (Ok(pk), Ok(sig)) = (from_hex(public_hex), from_hex(signature_hex)) else { return false };
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, pk).verify(message, &sig).is_ok()
}

/// What a receipt's request_digest must be for the request you sent: sha256hex(salt || JCS(body)).
pub fn request_digest(body: &Value, request_salt: &str) -> Result<String, String> {
    let mut data = from_hex(request_salt)?;
    data.extend(canonical(body)?);
    Ok(sha256hex(&data))
}

/// `request_digest` over the exact bytes of JSON sent.
pub fn request_digest_of_bytes(sent: &[u8], request_salt: &str) -> Result<String, String> {
    let body: Value = serde_json::from_slice(sent).map_err(|e| e.to_string())?;
    request_digest(&body, request_salt)
}

/// One choice of a text answer as the output digest reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub index: i64,
    pub content: Value,
    pub tool_calls: Value,
}

/// Text answers (chat, completion, vision): content and tool calls per choice, in index order.
pub fn chat_output_digest(answers: &[Answer]) -> Result<String, String> {
    let mut ordered: Vec<&Answer> = answers.iter().collect();
    ordered.sort_by_key(|a| a.index);
    let choices: Vec<Value> = ordered.iter().map(|a| json!({"content": a.content, "tool_calls": a.tool_calls})).collect();
    Ok(sha256hex(&canonical(&json!({ "choices": choices }))?))
}

/// One choice of a reply's JSON (a chat `message`, or a completion's `text`).
pub fn answer_of(choice: &Value) -> Answer {
    let index = choice.get("index").and_then(Value::as_i64).unwrap_or(0);
    match choice.get("message") {
        Some(m @ Value::Object(_)) => Answer {
            index,
            content: m.get("content").cloned().unwrap_or(Value::Null),
            tool_calls: m.get("tool_calls").cloned().unwrap_or(Value::Null),
        },
        _ => Answer { index, content: choice.get("text").cloned().unwrap_or(Value::Null), tool_calls: Value::Null },
    }
}

/// Embeddings: the vectors as float32 little-endian, concatenated.
pub fn embedding_output_digest(vectors: &[Vec<f64>]) -> String {
    let mut h = Sha256::new();
    for v in vectors {
        for x in v {
            h.update((*x as f32).to_le_bytes());
        }
    }
    to_hex(&h.finalize())
}

/// Images: JCS list of each PNG's sha256 hex.
pub fn image_output_digest(pngs: &[Vec<u8>]) -> String {
    let list: Vec<Value> = pngs.iter().map(|p| Value::String(sha256hex(p))).collect();
    sha256hex(&canonical(&Value::Array(list)).expect("strings"))
}

/// Checks by name, in the order they ran.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checks(pub Vec<(String, bool)>);

impl Checks {
    pub fn set(&mut self, name: &str, ok: bool) {
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = ok,
            None => self.0.push((name.to_string(), ok)),
        }
    }
    /// The result of a check, None when it did not run.
    pub fn get(&self, name: &str) -> Option<bool> {
        self.0.iter().find(|(n, _)| n == name).map(|e| e.1)
    }
    pub fn ok(&self) -> bool {
        self.0.iter().all(|e| e.1)
    }
    pub fn to_json(&self) -> Value {
        Value::Object(self.0.iter().map(|(n, ok)| (n.clone(), Value::Bool(*ok))).collect())
    }
}

/// One receipt's checks (name -> passed) and what failed, in words.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict {
    pub seq: Value,
    pub hash: String,
    pub checks: Checks,
    pub problems: Vec<String>,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        self.checks.ok() && self.problems.is_empty()
    }
    pub fn fail(&mut self, check: &str, problem: Option<&str>) {
        self.checks.set(check, false);
        self.problems.push(problem.map(str::to_string).unwrap_or_else(|| format!("{check} check failed")));
    }
    /// {"seq", "hash", "ok", "checks", "problems"}, as the shared vectors write a verdict.
    pub fn to_json(&self) -> Value {
        json!({"seq": self.seq, "hash": self.hash, "ok": self.ok(), "checks": self.checks.to_json(), "problems": self.problems})
    }
}

fn str_of(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Hash and both signatures of one receipt (and the coordinator key, when pinned).
pub fn verify_receipt(receipt: &Receipt, coordinator: Option<&str>) -> Verdict {
    verify_receipt_pinned(receipt, coordinator.map(|c| Value::String(c.into())).as_ref())
}

fn verify_receipt_pinned(receipt: &Receipt, coordinator: Option<&Value>) -> Verdict {
    let mut verdict =
        Verdict { seq: receipt.get("seq").cloned().unwrap_or(Value::Null), hash: str_of(receipt.get("hash")), ..Default::default() };
    let missing: Vec<&str> = REQUIRED.iter().copied().filter(|k| !receipt.contains_key(*k)).collect();
    if !missing.is_empty() {
        verdict.fail("shape", Some(&format!("missing fields: {}", missing.join(", "))));
        return verdict;
    }
    let checked = (|| -> Result<(bool, bool, bool), String> {
        let text = |k: &str, v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string).ok_or(format!("{k} is not a string"));
        let hash = receipt_hash(receipt)? == str_of(receipt.get("hash")) && receipt["hash"].is_string();
        let hash_bytes = from_hex(&text("hash", receipt.get("hash"))?)?;
        let coordinator_sig = ed25519_ok(&text("coordinator", receipt.get("coordinator"))?, &hash_bytes, &text("sig", receipt.get("sig"))?);
        let worker = receipt["worker"].as_object().ok_or("worker is not an object")?;
        let att = canonical(&attestation_of(receipt)?)?;
        let worker_sig = ed25519_ok(&text("worker.id", worker.get("id"))?, &att, &text("worker.sig", worker.get("sig"))?);
        Ok((hash, coordinator_sig, worker_sig))
    })();
    match checked {
        Ok((hash, coordinator_sig, worker_sig)) => {
            verdict.checks.set("hash", hash);
            verdict.checks.set("coordinator_sig", coordinator_sig);
            verdict.checks.set("worker_sig", worker_sig);
        }
        Err(e) => {
            verdict.fail("shape", Some(&format!("malformed receipt: {e}")));
            return verdict;
        }
    }
    if let Some(c) = coordinator {
        verdict.checks.set("coordinator_key", &receipt["coordinator"] == c);
    }
    let failed: Vec<String> = verdict.checks.0.iter().filter(|e| !e.1).map(|e| format!("{} check failed", e.0)).collect();
    verdict.problems.extend(failed);
    verdict
}

fn seq_of(receipt: &Receipt) -> Option<i64> {
    receipt.get("seq").and_then(Value::as_i64)
}

/// Each receipt, then the link from each to the one before it (in seq order); one coordinator key signs them all:
/// the pinned one, else the first receipt's.
pub fn verify_chain(receipts: &[Receipt], coordinator: Option<&str>) -> Vec<Verdict> {
    let mut ordered: Vec<&Receipt> = receipts.iter().collect();
    ordered.sort_by_key(|r| seq_of(r).unwrap_or(-1));
    let pinned: Option<Value> = match coordinator {
        Some(c) if !c.is_empty() => Some(Value::String(c.into())),
        _ => ordered.first().map(|r| r.get("coordinator").cloned().unwrap_or(Value::Null)),
    };
    let mut verdicts = Vec::with_capacity(ordered.len());
    let mut previous: Option<&Receipt> = None;
    for receipt in ordered {
        let mut verdict = verify_receipt_pinned(receipt, pinned.as_ref().filter(|v| !v.is_null()));
        if let Some(prev) = previous {
            let linked = match (seq_of(receipt), seq_of(prev)) {
                (Some(s), Some(b)) => s == b + 1 && receipt.get("prev") == prev.get("hash"),
                _ => false,
            };
            verdict.checks.set("chain_link", linked);
            if !linked {
                let seq = prev.get("seq").map(|s| if s.is_null() { "None".to_string() } else { str_of(Some(s)) }).unwrap_or("None".into());
                verdict.problems.push(format!("does not link to receipt seq {seq}"));
            }
        } else if receipt.get("seq").and_then(Value::as_f64) == Some(0.0) {
            let ok = receipt.get("prev").and_then(Value::as_str) == Some(GENESIS_PREV);
            verdict.checks.set("chain_link", ok);
            if !ok {
                verdict.problems.push("first receipt must link to the genesis value".into());
            }
        }
        verdicts.push(verdict);
        previous = Some(receipt);
    }
    verdicts
}

/// Receipts from text: a JSON list, one receipt, {"receipts": [...]}, JSON lines, or API replies carrying one.
pub fn parse_receipts(text: &str) -> Result<Vec<Receipt>, String> {
    let data: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) => Value::Array(
            text.lines().filter(|l| !l.trim().is_empty()).map(serde_json::from_str).collect::<Result<_, _>>().map_err(|e| e.to_string())?,
        ),
    };
    let data = match data {
        Value::Object(mut m) => match m.remove("receipts") {
            Some(Value::Object(r)) => Value::Array(vec![Value::Object(r)]),
            Some(list) => list,
            None => Value::Array(vec![Value::Object(m)]),
        },
        other => other,
    };
    let bad = || "expected receipts as a JSON object, list, or JSON lines".to_string();
    let Value::Array(items) = data else { return Err(bad()) };
    items
        .into_iter()
        .map(|item| match item {
            Value::Object(mut m) => match m.remove("receipt") {
                Some(Value::Object(r)) => Ok(r),
                Some(other) => {
                    m.insert("receipt".into(), other);
                    Ok(m)
                }
                None => Ok(m),
            },
            _ => Err(bad()),
        })
        .collect()
}

// ---- inclusion in a settlement epoch (RFC 9162) ----

fn leaf_hash(receipt_hash: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(receipt_hash);
    h.finalize().to_vec()
}

fn node_hash(left: &[u8], right: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().to_vec()
}

/// RFC 9162 section 2.1.3.2: does `leaf` (a receipt hash) sit at `index` of the tree of `size` leaves with `root`?
pub fn verify_inclusion(index: u64, size: u64, leaf: &[u8], path: &[Vec<u8>], root: &[u8]) -> bool {
    if index >= size {
        return false;
    }
    let (mut fn_, mut sn, mut r) = (index, size - 1, leaf_hash(leaf));
    for p in path {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == root
}

/// A receipt's proof (GET /one/receipts/{hash}/proof): the signed epoch head, and the audit path to its root; with
/// `anchored_root` (read from the EpochAnchor contract), that the root is the one anchored on chain.
pub fn verify_proof(proof: &Value, coordinator: Option<&str>, anchored_root: Option<&str>) -> Result<Checks, String> {
    let head = proof.get("head").and_then(Value::as_object).ok_or("proof has no head")?;
    let s = |m: &Map<String, Value>, k: &str| m.get(k).and_then(Value::as_str).map(str::to_string).ok_or(format!("'{k}' is not a string"));
    let p = proof.as_object().ok_or("proof is not an object")?;
    let mut checks = Checks::default();
    checks.set("head_hash", Some(&Value::String(receipt_hash(head)?)) == head.get("hash"));
    checks.set("head_sig", ed25519_ok(&s(head, "coordinator")?, &from_hex(&s(head, "hash")?)?, &s(head, "sig")?));
    let size = p.get("tree_size").and_then(Value::as_u64).ok_or("tree_size")?;
    let path: Vec<Vec<u8>> = p
        .get("audit_path")
        .and_then(Value::as_array)
        .ok_or("audit_path")?
        .iter()
        .map(|x| from_hex(x.as_str().unwrap_or("?")))
        .collect::<Result<_, _>>()?;
    let inclusion = p.get("tree_size") == head.get("size")
        && verify_inclusion(
            p.get("leaf_index").and_then(Value::as_u64).ok_or("leaf_index")?,
            size,
            &from_hex(&s(p, "receipt")?)?,
            &path,
            &from_hex(&s(head, "root")?)?,
        );
    checks.set("inclusion", inclusion);
    if let Some(c) = coordinator {
        checks.set("coordinator_key", head.get("coordinator").and_then(Value::as_str) == Some(c));
    }
    if let Some(a) = anchored_root {
        checks.set("anchored", head.get("root").and_then(Value::as_str) == Some(a.strip_prefix("0x").unwrap_or(a)));
    }
    Ok(checks)
}
