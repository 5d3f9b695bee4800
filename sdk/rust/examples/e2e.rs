//! `cargo run --offline --example e2e -- URL`: the Rust SDK against a live coordinator: a streamed chat and an
//! embedding in verify mode, then tampered copies that must be rejected. Prints JSON that tests/sdk asserts on.

use one_sdk::*;

fn main() {
    let url = std::env::args().nth(1).unwrap_or_else(|| {
        eprintln!("usage: e2e URL");
        std::process::exit(2)
    });
    if let Err(e) = run(&url) {
        eprintln!("e2e: {e}");
        std::process::exit(1);
    }
}

fn run(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::new(url).verify();
    let mut stream = client.chat_stream(json!({"model": "tiny-chat", "max_tokens": 24,
        "messages": [{"role": "user", "content": "hello from the Rust SDK"}]}))?;
    let mut deltas = 0;
    for delta in &mut stream {
        if !delta.is_empty() {
            deltas += 1;
        }
    }
    let text = stream.text().to_string();
    let chat = stream.reply()?;
    let embedded = client.embeddings(json!({"model": "all-minilm-l6-v2", "input": ["a receipt", "a worker"]}))?;
    let data = embedded.body["data"].as_array().cloned().unwrap_or_default();

    // Each receipt verifies alone as a chain segment; a copy with its charge changed does not.
    let chain_ok: Vec<bool> =
        [&chat.receipt, &embedded.receipt].iter().map(|r| verify_chain(&[(*r).clone()], None).iter().all(Verdict::ok)).collect();
    let mut forged = chat.receipt.clone();
    let amount = forged["charge"]["amount"].as_i64().ok_or("charge.amount is not an integer")?;
    forged["charge"]["amount"] = json!(amount + 1);
    let forged_verdict = verify_receipt(&forged, None);

    // The receipt must cover this request and this answer: another body or another answer is caught.
    let mut sent: Value = serde_json::from_slice(&chat.sent)?;
    sent["max_tokens"] = json!(25);
    let other_body = serde_json::to_vec(&sent)?;
    let answer = chat_output_digest(&[Answer { index: 0, content: json!(text), tool_calls: Value::Null }])?;
    let other_answer = chat_output_digest(&[Answer { index: 0, content: json!("x"), tool_calls: Value::Null }])?;
    let salt = &chat.request_salt;
    let mut forged_reply = chat.clone();
    forged_reply.receipt = forged.clone();
    let verify_mode = client.checked(forged_reply, &answer);

    let out = json!({
        "chat": {"deltas": deltas, "text": text, "ok": chat.verdict.ok(), "checks": chat.verdict.checks.to_json(),
                 "kind": chat.receipt["kind"], "hash": chat.receipt["hash"], "lane": chat.account.lane,
                 "rate_limits": chat.account.rate_limits, "request_salt": salt},
        "embedding": {"ok": embedded.verdict.ok(), "checks": embedded.verdict.checks.to_json(), "count": data.len(),
                      "kind": embedded.receipt["kind"], "dims": data.first().and_then(|d| d["embedding"].as_array()).map_or(0, Vec::len)},
        "chain_ok": chain_ok,
        "forged": {"ok": forged_verdict.ok(), "problems": forged_verdict.problems},
        "other_request": client.check(&chat.receipt, salt, &other_body, &answer).problems,
        "other_output": client.check(&chat.receipt, salt, &chat.sent, &other_answer).problems,
        "same_again_ok": client.check(&chat.receipt, salt, &chat.sent, &answer).ok(),
        "verify_mode_rejects": matches!(verify_mode, Err(Error::Receipt(_))),
        "verify_mode_error": verify_mode.err().map(|e| e.to_string()),
    });
    println!("{out}");
    Ok(())
}
