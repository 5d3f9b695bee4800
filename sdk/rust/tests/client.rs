//! The client against a fake coordinator (std::net, on a free port) whose receipts are signed here with ring:
//! a whole chat (Content-Length), a streamed chat (chunked server-sent events), embeddings and images (chunked
//! JSON); the x-one-* headers; verify mode accepts what checks out and rejects a reply whose answer was changed.

use one_sdk::client::object;
use one_sdk::*;
use ring::signature::{Ed25519KeyPair, KeyPair};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

fn sign(receipt: &mut Receipt) {
    let worker = Ed25519KeyPair::from_seed_unchecked(&[7u8; 32]).unwrap();
    let coordinator = Ed25519KeyPair::from_seed_unchecked(&[9u8; 32]).unwrap();
    receipt.insert("coordinator".into(), json!(to_hex(coordinator.public_key().as_ref())));
    receipt.insert("worker".into(), json!({"id": to_hex(worker.public_key().as_ref()), "sig": ""}));
    let att = canonical(&attestation_of(receipt).unwrap()).unwrap();
    receipt["worker"]["sig"] = json!(to_hex(worker.sign(&att).as_ref()));
    let hash = receipt_hash(receipt).unwrap();
    receipt.insert("sig".into(), json!(to_hex(coordinator.sign(&from_hex(&hash).unwrap()).as_ref())));
    receipt.insert("hash".into(), json!(hash));
}

fn receipt_for(kind: &str, body: &Value, salt: &str, output_digest: &str) -> Value {
    let mut r = object(json!({"v": 1, "seq": 0, "prev": GENESIS_PREV, "ts": "2026-11-26T12:00:00.000Z", "job": "job-1", "kind": kind,
        "lane": "included", "account": "ab", "model": body["model"], "request_digest": request_digest(body, salt).unwrap(),
        "output_digest": output_digest, "usage": {"input_tokens": 3, "output_tokens": 2, "images": 0},
        "charge": {"unit": "credit", "amount": 5}, "parent": null}));
    sign(&mut r);
    Value::Object(r)
}

fn chunked(parts: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend(format!("{:x}\r\n{p}\r\n", p.len()).into_bytes());
    }
    out.extend(b"0\r\n\r\n");
    out
}

/// Serves `n` requests; `tamper` changes the answer after the receipt was made.
fn fake_coordinator(n: usize, tamper: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming().take(n) {
            let mut conn = conn.unwrap();
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let (mut line, mut path, mut length) = (String::new(), String::new(), 0usize);
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                if path.is_empty() {
                    path = line.split_whitespace().nth(1).unwrap().to_string();
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                if line.trim().is_empty() {
                    break;
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let body: Value = serde_json::from_slice(&body).unwrap();
            let salt = "00112233445566778899aabbccddeeff";
            let headers = "x-one-lane: included\r\nx-one-balance: 41.5\r\nx-one-balance-unit: credit\r\nx-one-refresh-in: 60\r\nx-ratelimit-remaining-requests: 9\r\n";
            let (kind_headers, payload): (&str, Vec<u8>) = match (path.as_str(), body["stream"] == json!(true)) {
                ("/v1/chat/completions", false) => {
                    let call = json!([{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}}]);
                    let digest = chat_output_digest(&[Answer { index: 0, content: json!("Hello"), tool_calls: call.clone() }]).unwrap();
                    let content = if tamper { "Hellp" } else { "Hello" };
                    let reply = json!({"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "tool_calls": call}}],
                        "receipt": receipt_for("chat", &body, salt, &digest), "request_salt": salt});
                    let text = reply.to_string();
                    ("Content-Type: application/json\r\n", format!("Content-Length: {}\r\n\r\n{text}", text.len()).into_bytes())
                }
                ("/v1/chat/completions", true) => {
                    let digest =
                        chat_output_digest(&[Answer { index: 0, content: json!("Hello world"), tool_calls: Value::Null }]).unwrap();
                    let events: Vec<String> = [
                        json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hello"}}]}),
                        json!({"choices": [{"index": 0, "delta": {"content": " world"}}]}),
                        json!({"choices": [], "receipt": receipt_for("chat", &body, salt, &digest), "request_salt": salt}),
                    ]
                    .iter()
                    .map(|e| format!("data: {e}\n\n"))
                    .chain(["data: [DONE]\n\n".to_string()])
                    .collect();
                    let mut out = b"Transfer-Encoding: chunked\r\n\r\n".to_vec();
                    out.extend(chunked(&events));
                    ("Content-Type: text/event-stream\r\n", out)
                }
                ("/v1/embeddings", _) => {
                    let vectors = vec![vec![0.5, -0.25], vec![0.1, 0.2]];
                    let digest = embedding_output_digest(&vectors);
                    let reply = json!({"data": [{"index": 1, "embedding": vectors[1]}, {"index": 0, "embedding": vectors[0]}],
                        "receipt": receipt_for("embedding", &body, salt, &digest), "request_salt": salt});
                    let text = reply.to_string();
                    let mut out = b"Transfer-Encoding: chunked\r\n\r\n".to_vec();
                    out.extend(chunked(&[text[..10].to_string(), text[10..].to_string()]));
                    ("Content-Type: application/json\r\n", out)
                }
                _ => {
                    // images: one PNG-ish payload as base64 ("\x89PNG" + 3 bytes)
                    let png = vec![0x89, b'P', b'N', b'G', 1, 2, 3];
                    let digest = image_output_digest(&[png]);
                    let reply = json!({"data": [{"b64_json": "iVBORwECAw=="}], "receipt": receipt_for("image", &body, salt, &digest), "request_salt": salt});
                    let text = reply.to_string();
                    ("Content-Type: application/json\r\n", format!("Content-Length: {}\r\n\r\n{text}", text.len()).into_bytes())
                }
            };
            conn.write_all(format!("HTTP/1.1 200 OK\r\n{headers}{kind_headers}").as_bytes()).unwrap();
            conn.write_all(&payload).unwrap();
        }
    });
    url
}

#[test]
fn the_client_checks_every_kind_of_reply() {
    let client = Client::new(&fake_coordinator(4, false)).verify();
    let reply = client.chat(json!({"model": "tiny-chat", "messages": [{"role": "user", "content": "Grüße 😀"}], "tools": []})).unwrap();
    assert!(reply.verdict.ok(), "{:?}", reply.verdict);
    assert_eq!(
        reply.verdict.checks.to_json(),
        json!({"hash": true, "coordinator_sig": true, "worker_sig": true, "request": true, "output": true})
    );
    assert_eq!(
        (reply.account.lane.as_str(), reply.account.balance, reply.account.unit.as_str(), reply.account.refresh_in),
        ("included", Some(41.5), "credit", Some(60.0))
    );
    assert_eq!(reply.account.rate_limits["x-ratelimit-remaining-requests"], "9");
    assert_eq!(reply.request_salt, "00112233445566778899aabbccddeeff");

    let mut stream = client.chat_stream(json!({"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}]})).unwrap();
    let deltas: Vec<String> = (&mut stream).filter(|d| !d.is_empty()).collect();
    assert_eq!(deltas, ["Hello", " world"]);
    let reply = stream.reply().unwrap();
    assert!(reply.verdict.ok(), "{:?}", reply.verdict);
    assert_eq!(serde_json::from_slice::<Value>(&reply.sent).unwrap()["stream"], json!(true));

    let reply = client.embeddings(json!({"model": "all-minilm-l6-v2", "input": ["a", "b"]})).unwrap();
    assert!(reply.verdict.ok() && reply.receipt["kind"] == "embedding", "{:?}", reply.verdict);
    let reply = client.images(json!({"model": "tiny-image", "prompt": "a cat"})).unwrap();
    assert!(reply.verdict.ok(), "{:?}", reply.verdict);
}

#[test]
fn verify_mode_rejects_an_answer_the_receipt_does_not_cover() {
    let url = fake_coordinator(2, true);
    let err = Client::new(&url).verify().chat(json!({"model": "tiny-chat", "messages": []})).unwrap_err();
    assert_eq!(err.to_string(), "the receipt does not check out: output_digest does not match the output received");
    let reply = Client::new(&url).chat(json!({"model": "tiny-chat", "messages": []})).unwrap(); // not in verify mode: a verdict
    assert_eq!(reply.verdict.checks.get("output"), Some(false));
    assert!(matches!(Client::new("http://127.0.0.1:1").chat(json!({})), Err(Error::Http(_))));
}
