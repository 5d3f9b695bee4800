//! The ONE network's Rust SDK: a small client for the OpenAI-compatible API of any ONE coordinator (chat, streamed
//! chat, embeddings) and the checks that make its replies worth having: every receipt's RFC 8785 hash, the
//! coordinator's and the worker's Ed25519 signatures, the chain links, the request digest against the exact JSON
//! sent (with the reply's `request_salt`), the output digest against what was received, and RFC 9162 inclusion
//! proofs against a signed epoch head. Crates: ring, sha2, serde_json (Debian-packaged).

pub mod canonical;
pub mod client;
pub mod receipts;

pub use canonical::{canonical, canonicalize_json, format_number};
pub use client::{Account, ChatStream, Client, Error, ReceiptError, Reply};
pub use receipts::*;
pub use serde_json::{json, Value};
