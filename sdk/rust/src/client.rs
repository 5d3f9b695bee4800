//! A small client for any ONE coordinator's OpenAI-compatible API over plain HTTP/1.1 (std::net; the devnet and a
//! local coordinator speak http): chat (whole or streamed as server-sent events), completions, embeddings and
//! images. Every reply comes back with its receipt, `request_salt`, the `x-one-*` headers and a verdict; in verify
//! mode a receipt that does not check out is an `Error::Receipt`.

use crate::receipts::*;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// What a reply's x-one-* headers say: the lane it ran on, the balance left and its unit, when Included credits
/// refresh (seconds), and the x-ratelimit-* headers.
#[derive(Clone, Debug, Default)]
pub struct Account {
    pub lane: String,
    pub balance: Option<f64>,
    pub unit: String,
    pub refresh_in: Option<f64>,
    pub rate_limits: BTreeMap<String, String>,
}

impl Account {
    pub fn of(headers: &[(String, String)]) -> Account {
        let get = |k: &str| headers.iter().find(|h| h.0 == k).map(|h| h.1.clone()).unwrap_or_default();
        Account {
            lane: get("x-one-lane"),
            balance: get("x-one-balance").parse().ok(),
            unit: get("x-one-balance-unit"),
            refresh_in: get("x-one-refresh-in").parse().ok(),
            rate_limits: headers.iter().filter(|h| h.0.starts_with("x-ratelimit-")).cloned().collect(),
        }
    }
}

/// A reply: its JSON, the receipt, the salt, the account headers, the checks, and the exact JSON sent.
#[derive(Clone, Debug, Default)]
pub struct Reply {
    pub body: Value,
    pub receipt: Receipt,
    pub request_salt: String,
    pub account: Account,
    pub verdict: Verdict,
    pub sent: Vec<u8>,
}

/// A reply whose receipt does not check out (verify mode).
#[derive(Clone, Debug)]
pub struct ReceiptError {
    pub verdict: Verdict,
    pub reply: Box<Reply>,
}

impl fmt::Display for ReceiptError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "the receipt does not check out: {}", self.verdict.problems.join("; "))
    }
}

/// What can go wrong with a call.
#[derive(Debug)]
pub enum Error {
    /// The coordinator could not be reached, answered with an error status, or sent what is not JSON.
    Http(String),
    /// Verify mode: the reply came, its receipt does not check out.
    Receipt(ReceiptError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Error::Http(e) => write!(f, "{e}"),
            Error::Receipt(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {}

fn http<E: fmt::Display>(e: E) -> Error {
    Error::Http(e.to_string())
}

/// A status, the headers (lowercase names) and a reader over the body.
type Response = (u16, Vec<(String, String)>, Box<dyn BufRead>);

/// The client. `Client::new("http://127.0.0.1:3000").verify()` checks every reply and errs when one does not pass.
#[derive(Clone, Debug)]
pub struct Client {
    host: String,
    port: u16,
    prefix: String,
    pub api_key: Option<String>,
    pub verify_replies: bool,
    /// The coordinator key to pin (hex); unset, each receipt is checked against the key it names.
    pub coordinator: Option<String>,
}

impl Client {
    /// A client for `http://host[:port][/prefix]` (a trailing `/v1` is allowed).
    pub fn new(base_url: &str) -> Client {
        let rest = base_url.strip_prefix("http://").unwrap_or(base_url);
        let (authority, path) = rest.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap_or((rest, String::new()));
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => (h.to_string(), p.parse().unwrap()),
            _ => (authority.to_string(), 80),
        };
        let prefix = path.trim_end_matches('/').trim_end_matches("/v1").to_string();
        Client { host, port, prefix, api_key: None, verify_replies: false, coordinator: None }
    }
    /// Verify every reply: a receipt that does not check out is an error.
    pub fn verify(mut self) -> Client {
        self.verify_replies = true;
        self
    }
    pub fn with_api_key(mut self, key: &str) -> Client {
        self.api_key = Some(key.into());
        self
    }
    pub fn with_coordinator(mut self, key_hex: &str) -> Client {
        self.coordinator = Some(key_hex.into());
        self
    }

    /// The receipt's own checks (hash, both signatures, the pinned coordinator), then that it covers this request
    /// (request_digest over the exact JSON sent, with the salt) and this output (output_digest).
    pub fn check(&self, receipt: &Receipt, request_salt: &str, sent: &[u8], output_digest: &str) -> Verdict {
        if receipt.is_empty() {
            let mut v = Verdict::default();
            v.fail("receipt", Some("the reply carries no receipt"));
            return v;
        }
        let mut v = verify_receipt(receipt, self.coordinator.as_deref());
        if request_salt.is_empty() || sent.is_empty() {
            v.fail("request", Some("no request salt or request body to check the request digest against"));
        } else {
            let ok = request_digest_of_bytes(sent, request_salt).ok().as_deref() == receipt.get("request_digest").and_then(Value::as_str);
            v.checks.set("request", ok);
            if !ok {
                v.problems.push("request_digest does not match the request sent".into());
            }
        }
        let ok = receipt.get("output_digest").and_then(Value::as_str) == Some(output_digest);
        v.checks.set("output", ok);
        if !ok {
            v.problems.push("output_digest does not match the output received".into());
        }
        v
    }

    /// `check`, and in verify mode an `Error::Receipt` when the verdict is not OK.
    pub fn checked(&self, mut reply: Reply, output_digest: &str) -> Result<Reply, Error> {
        reply.verdict = self.check(&reply.receipt, &reply.request_salt, &reply.sent, output_digest);
        if self.verify_replies && !reply.verdict.ok() {
            return Err(Error::Receipt(ReceiptError { verdict: reply.verdict.clone(), reply: Box::new(reply) }));
        }
        Ok(reply)
    }

    fn post(&self, path: &str, sent: &[u8], accept: &str) -> Result<Response, Error> {
        let mut conn = TcpStream::connect((self.host.as_str(), self.port)).map_err(http)?;
        let mut head = format!(
            "POST {}{path} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\nAccept: {accept}\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: one-sdk-rust/0.1.0\r\n",
            self.prefix, self.host, self.port, sent.len());
        if let Some(key) = &self.api_key {
            head += &format!("Authorization: Bearer {key}\r\n");
        }
        head += "\r\n";
        conn.write_all(head.as_bytes()).map_err(http)?;
        conn.write_all(sent).map_err(http)?;
        let mut reader = BufReader::new(conn);
        let mut line = String::new();
        reader.read_line(&mut line).map_err(http)?;
        let status: u16 =
            line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| http(format!("bad status line: {line:?}")))?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).map_err(http)? == 0 || line.trim_end().is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let header = |k: &str| headers.iter().find(|h| h.0 == k).map(|h| h.1.to_ascii_lowercase());
        let body: Box<dyn BufRead> = if header("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
            Box::new(BufReader::new(Chunked { inner: reader, left: 0, done: false }))
        } else if let Some(n) = header("content-length").and_then(|n| n.parse::<u64>().ok()) {
            Box::new(BufReader::new(reader.take(n)))
        } else {
            Box::new(reader)
        };
        Ok((status, headers, body))
    }

    fn call(&self, path: &str, body: &Value, digest: impl Fn(&Value) -> Result<String, String>) -> Result<Reply, Error> {
        let sent = serde_json::to_vec(body).map_err(http)?;
        let (status, headers, mut reader) = self.post(path, &sent, "application/json")?;
        let mut text = Vec::new();
        reader.read_to_end(&mut text).map_err(http)?;
        if status >= 400 {
            return Err(Error::Http(format!("HTTP {status}: {}", String::from_utf8_lossy(&text))));
        }
        let value: Value = serde_json::from_slice(&text).map_err(|e| http(format!("reply is not JSON: {e}")))?;
        let reply = Reply {
            receipt: value.get("receipt").and_then(Value::as_object).cloned().unwrap_or_default(),
            request_salt: value.get("request_salt").and_then(Value::as_str).unwrap_or_default().to_string(),
            account: Account::of(&headers),
            sent,
            body: value.clone(),
            verdict: Verdict::default(),
        };
        let output = digest(&value).unwrap_or_default(); // an answer that cannot be read fails the output check
        self.checked(reply, &output)
    }

    /// POST /v1/chat/completions (not streamed): the body as the OpenAI API takes it (tools, response_format...).
    pub fn chat(&self, body: Value) -> Result<Reply, Error> {
        self.call("/v1/chat/completions", &without_stream(body), text_digest)
    }

    /// POST /v1/completions.
    pub fn completion(&self, body: Value) -> Result<Reply, Error> {
        self.call("/v1/completions", &without_stream(body), text_digest)
    }

    /// POST /v1/embeddings (float vectors).
    pub fn embeddings(&self, body: Value) -> Result<Reply, Error> {
        let mut body = body;
        body["encoding_format"] = json!("float");
        self.call("/v1/embeddings", &body, |v| {
            let mut data: Vec<&Value> = v.get("data").and_then(Value::as_array).ok_or("no data")?.iter().collect();
            data.sort_by_key(|e| e.get("index").and_then(Value::as_i64).unwrap_or(0));
            let vectors: Option<Vec<Vec<f64>>> =
                data.iter().map(|e| e.get("embedding")?.as_array()?.iter().map(Value::as_f64).collect()).collect();
            Ok(embedding_output_digest(&vectors.ok_or("an embedding is not a list of numbers")?))
        })
    }

    /// POST /v1/images/generations (as b64_json: the receipt's digest is over the PNG bytes).
    pub fn images(&self, body: Value) -> Result<Reply, Error> {
        let mut body = body;
        body["response_format"] = json!("b64_json");
        self.call("/v1/images/generations", &body, |v| {
            let pngs: Option<Vec<Vec<u8>>> = v
                .get("data")
                .and_then(Value::as_array)
                .ok_or("no data")?
                .iter()
                .map(|im| base64_decode(im.get("b64_json")?.as_str()?))
                .collect();
            Ok(image_output_digest(&pngs.ok_or("an image is not base64")?))
        })
    }

    /// POST /v1/chat/completions with `"stream": true`: iterate the text deltas, then `reply()` for the receipt
    /// of the last chunk, checked against the exact JSON sent and the whole answer.
    pub fn chat_stream(&self, body: Value) -> Result<ChatStream, Error> {
        let mut body = body;
        body["stream"] = json!(true);
        let sent = serde_json::to_vec(&body).map_err(http)?;
        let (status, headers, mut reader) = self.post("/v1/chat/completions", &sent, "text/event-stream")?;
        if status >= 400 {
            let mut text = String::new();
            let _ = reader.read_to_string(&mut text);
            return Err(Error::Http(format!("HTTP {status}: {text}")));
        }
        Ok(ChatStream {
            client: self.clone(),
            reader,
            sent,
            headers,
            choices: BTreeMap::new(),
            last: Value::Null,
            text: String::new(),
            err: None,
            done: false,
        })
    }
}

fn without_stream(mut body: Value) -> Value {
    if let Some(m) = body.as_object_mut() {
        m.remove("stream");
    }
    body
}

fn text_digest(v: &Value) -> Result<String, String> {
    let choices = v.get("choices").and_then(Value::as_array).ok_or("no choices")?;
    chat_output_digest(&choices.iter().map(answer_of).collect::<Vec<_>>())
}

/// A streamed chat: an iterator over the text each chunk adds; `reply()` reads the rest and checks the receipt.
pub struct ChatStream {
    client: Client,
    reader: Box<dyn BufRead>,
    sent: Vec<u8>,
    headers: Vec<(String, String)>,
    choices: BTreeMap<i64, (Value, Value)>,
    last: Value,
    text: String,
    err: Option<Error>,
    done: bool,
}

impl ChatStream {
    /// The data of the next server-sent event; None at the end.
    fn event(&mut self) -> Option<String> {
        let mut data: Vec<String> = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            match self.reader.read_line(&mut line) {
                Ok(0) => return if data.is_empty() { None } else { Some(data.join("\n")) },
                Ok(_) => {}
                Err(e) => {
                    self.err = Some(http(e));
                    return None;
                }
            }
            let l = line.trim_end_matches(['\r', '\n']);
            if l.is_empty() {
                if !data.is_empty() {
                    return Some(data.join("\n"));
                }
            } else if let Some(d) = l.strip_prefix("data:") {
                data.push(d.strip_prefix(' ').unwrap_or(d).to_string());
            }
        }
    }

    /// Adds a chunk's deltas to the answer, as the output digest reads it; returns the text it added.
    fn gather(&mut self, chunk: &Value) -> String {
        let mut added = String::new();
        for c in chunk.get("choices").and_then(Value::as_array).into_iter().flatten() {
            let index = c.get("index").and_then(Value::as_i64).unwrap_or(0);
            let (content, calls) = self.choices.entry(index).or_insert((Value::Null, Value::Null));
            let delta = c.get("delta").cloned().unwrap_or(Value::Null);
            if let Some(t) = delta.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                *content = Value::String(format!("{}{t}", content.as_str().unwrap_or("")));
                added.push_str(t);
            }
            for call in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                if !calls.is_array() {
                    *calls = json!([]);
                }
                let gathered = calls.as_array_mut().unwrap();
                let at = call.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
                while gathered.len() <= at {
                    gathered.push(json!({"id": null, "type": "function", "function": {"name": "", "arguments": ""}}));
                }
                let g = &mut gathered[at];
                if let Some(id) = call.get("id").and_then(Value::as_str).filter(|s| !s.is_empty()) {
                    g["id"] = json!(id);
                }
                if let Some(f) = call.get("function") {
                    for k in ["name", "arguments"] {
                        let more = f.get(k).and_then(Value::as_str).unwrap_or("");
                        let before = g["function"][k].as_str().unwrap_or("").to_string();
                        g["function"][k] = json!(before + more);
                    }
                }
            }
        }
        added
    }

    /// The whole answer so far (all choices' text).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The answers gathered so far, as the output digest reads them.
    pub fn answers(&self) -> Vec<Answer> {
        self.choices.iter().map(|(i, (c, t))| Answer { index: *i, content: c.clone(), tool_calls: t.clone() }).collect()
    }

    /// Reads the rest of the stream and returns the last chunk's receipt checked against the whole answer.
    pub fn reply(mut self) -> Result<Reply, Error> {
        while self.next().is_some() {}
        if let Some(e) = self.err.take() {
            return Err(e);
        }
        let reply = Reply {
            receipt: self.last.get("receipt").and_then(Value::as_object).cloned().unwrap_or_default(),
            request_salt: self.last.get("request_salt").and_then(Value::as_str).unwrap_or_default().to_string(),
            account: Account::of(&self.headers),
            sent: std::mem::take(&mut self.sent),
            body: self.last.clone(),
            verdict: Verdict::default(),
        };
        let output = chat_output_digest(&self.answers()).unwrap_or_default();
        self.client.checked(reply, &output)
    }
}

impl Iterator for ChatStream {
    type Item = String;
    /// The text the next chunk added (possibly empty).
    fn next(&mut self) -> Option<String> {
        if self.done {
            return None;
        }
        let Some(data) = self.event() else {
            self.done = true;
            return None;
        };
        if data.trim() == "[DONE]" {
            self.done = true;
            return None;
        }
        match serde_json::from_str::<Value>(&data) {
            Ok(chunk) => {
                let added = self.gather(&chunk);
                self.text.push_str(&added);
                if chunk.get("receipt").is_some() || self.last.get("receipt").is_none() {
                    self.last = chunk;
                }
                Some(added)
            }
            Err(e) => {
                self.err = Some(http(format!("a stream event is not JSON: {e}")));
                self.done = true;
                None
            }
        }
    }
}

/// HTTP/1.1 chunked transfer decoding.
struct Chunked<R: BufRead> {
    inner: R,
    left: usize,
    done: bool,
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut line = String::new();
            self.inner.read_line(&mut line)?;
            if line.trim().is_empty() {
                line.clear();
                self.inner.read_line(&mut line)?; // the CRLF after the previous chunk
            }
            let size = line.trim().split(';').next().unwrap_or("");
            self.left = usize::from_str_radix(size, 16)
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad chunk size {line:?}")))?;
            if self.left == 0 {
                self.done = true;
                return Ok(0);
            }
        }
        let want = buf.len().min(self.left);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            self.done = true;
        }
        self.left -= n;
        Ok(n)
    }
}

/// Standard base64 (with or without padding); None when it is not base64.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// A JSON object from `json!` (for building requests).
pub fn object(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}
