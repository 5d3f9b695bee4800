//! Every shared vector in sdk/vectors (generated from the Python reference; ONE_VECTORS points elsewhere).

use one_sdk::*;
use std::path::PathBuf;

fn vectors(name: &str) -> Value {
    let dir =
        std::env::var("ONE_VECTORS").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../vectors"));
    let text = std::fs::read_to_string(dir.join(name)).expect("the shared vectors");
    serde_json::from_str(&text).unwrap()
}

fn list(v: &Value) -> &Vec<Value> {
    v.as_array().expect("a list")
}

fn receipts_of(v: &Value) -> Vec<Receipt> {
    list(v).iter().map(|r| r.as_object().unwrap().clone()).collect()
}

#[test]
fn canonical_json_matches_every_vector() {
    let data = vectors("canonical.json");
    let cases = list(&data["cases"]);
    assert!(cases.len() >= 10, "only {} canonical cases", cases.len());
    let mut failed = vec![];
    for c in cases {
        let got = canonicalize_json(c["json"].as_str().unwrap()).map(|b| String::from_utf8(b).unwrap());
        if got.as_deref() != Ok(c["canonical"].as_str().unwrap()) {
            failed.push(format!("{}: got {:?} want {}", c["name"], got, c["canonical"]));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn numbers_as_ecmascript_writes_them() {
    for (f, want) in [
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (1e-6, "0.000001"),
        (5e-324, "5e-324"),
        (0.1, "0.1"),
        (-2.25, "-2.25"),
        (1.5e300, "1.5e+300"),
        (2.5e-10, "2.5e-10"),
        (123456789.123, "123456789.123"),
        (-0.0, "0"),
        (9007199254740993.0, "9007199254740992"),
        (1e300 * 10.0, "1e+301"),
    ] {
        assert_eq!(format_number(f).unwrap(), want, "{f}");
    }
    assert!(format_number(f64::NAN).is_err());
}

#[test]
fn receipt_verdicts_match_the_reference_for_every_case() {
    let data = vectors("receipts.json");
    let cases = list(&data["cases"]);
    assert!(cases.len() >= 25, "only {} receipt cases", cases.len());
    let mut failed = vec![];
    for c in cases {
        let verdicts: Vec<Value> = verify_chain(&receipts_of(&c["receipts"]), None).iter().map(Verdict::to_json).collect();
        if Value::Array(verdicts.clone()) != c["verdict"]["receipts"] {
            failed.push(format!("{}:\n got {}\nwant {}", c["name"], Value::Array(verdicts), c["verdict"]["receipts"]));
        }
        let all_ok = verify_chain(&receipts_of(&c["receipts"]), None).iter().all(Verdict::ok);
        assert_eq!(Value::Bool(all_ok), c["verdict"]["ok"], "{}", c["name"]);
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    let valid = receipts_of(&cases[0]["receipts"]);
    assert!(verify_chain(&valid, data["coordinator"].as_str()).iter().all(Verdict::ok), "valid chain, coordinator pinned");
    let other = verify_chain(&valid, Some(GENESIS_PREV));
    assert_eq!(other[0].checks.get("coordinator_key"), Some(false), "another pinned key must fail coordinator_key");
}

#[test]
fn request_and_output_digests() {
    let data = vectors("receipts.json");
    for r in list(&data["requests"]) {
        let salt = r["request_salt"].as_str().unwrap();
        assert_eq!(request_digest(&r["body"], salt).unwrap(), r["request_digest"].as_str().unwrap());
        let bytes = serde_json::to_vec(&r["body"]).unwrap(); // the same request as bytes, serde_json's key order
        assert_eq!(request_digest_of_bytes(&bytes, salt).unwrap(), r["request_digest"].as_str().unwrap());
    }
    let outputs = list(&data["outputs"]);
    assert_eq!(outputs.len(), 4);
    for o in outputs {
        let got = match o["kind"].as_str().unwrap() {
            "chat" => {
                let answers: Vec<Answer> =
                    list(&o["choices"]).iter().map(|c| answer_of(&json!({"index": c["index"], "message": c}))).collect();
                chat_output_digest(&answers).unwrap()
            }
            "embedding" => {
                let vectors: Vec<Vec<f64>> =
                    list(&o["vectors"]).iter().map(|v| list(v).iter().map(|x| x.as_f64().unwrap()).collect()).collect();
                embedding_output_digest(&vectors)
            }
            "image" => {
                let pngs: Vec<Vec<u8>> = list(&o["pngs_hex"]).iter().map(|p| from_hex(p.as_str().unwrap()).unwrap()).collect();
                image_output_digest(&pngs)
            }
            k => panic!("kind {k}"),
        };
        assert_eq!(got, o["output_digest"].as_str().unwrap(), "{} output digest", o["kind"]);
    }
}

#[test]
fn inclusion_proofs_for_trees_of_1_to_17_leaves() {
    let data = vectors("proofs.json");
    let trees = list(&data["trees"]);
    assert_eq!(trees.len(), 17);
    for t in trees {
        let size = t["size"].as_u64().unwrap();
        let root = from_hex(t["root"].as_str().unwrap()).unwrap();
        let leaves = list(&t["leaves"]);
        for p in list(&t["proofs"]) {
            let index = p["leaf_index"].as_u64().unwrap();
            let path: Vec<Vec<u8>> = list(&p["audit_path"]).iter().map(|x| from_hex(x.as_str().unwrap()).unwrap()).collect();
            let leaf = from_hex(leaves[index as usize].as_str().unwrap()).unwrap();
            assert!(verify_inclusion(index, size, &leaf, &path, &root), "tree {size} leaf {index} does not verify");
            assert!(!verify_inclusion(index, size, &[0u8; 32], &path, &root), "tree {size} leaf {index}: another leaf verifies");
        }
    }
    for c in list(&data["proofs"]) {
        let checks = verify_proof(&c["proof"], None, None).unwrap();
        assert_eq!(checks.to_json(), c["checks"], "{}", c["name"]);
    }
    let valid = &list(&data["proofs"])[0]["proof"];
    let head = &valid["head"];
    let root = format!("0x{}", head["root"].as_str().unwrap());
    let checks = verify_proof(valid, head["coordinator"].as_str(), Some(&root)).unwrap();
    assert!(checks.ok() && checks.0.len() == 5, "pinned and anchored: {:?}", checks);
    let checks = verify_proof(valid, None, Some(&format!("0x{GENESIS_PREV}"))).unwrap();
    assert_eq!(checks.get("anchored"), Some(false));
}

#[test]
fn parse_receipts_reads_every_form() {
    let r = r#"{"seq":0,"hash":"ab"}"#;
    for text in [
        format!("[{r}]"),
        r.to_string(),
        format!(r#"{{"receipts":[{r}]}}"#),
        format!("{r}\n\n{r}\n"),
        format!(r#"{{"receipt":{r},"id":"x"}}"#),
    ] {
        let got = parse_receipts(&text).unwrap();
        assert_eq!(got[0]["hash"], "ab", "{text}");
    }
    assert!(parse_receipts("[1]").is_err());
}

#[test]
fn a_missing_field_and_a_malformed_receipt_are_shape_failures() {
    let data = vectors("receipts.json");
    let mut r = receipts_of(&data["cases"][0]["receipts"])[0].clone();
    r.remove("worker");
    let v = verify_receipt(&r, None);
    assert!(!v.ok() && v.problems == ["missing fields: worker"], "{:?}", v);
    let mut r = receipts_of(&data["cases"][0]["receipts"])[0].clone();
    r.insert("hash".into(), json!("zz"));
    let v = verify_receipt(&r, None);
    assert_eq!(v.checks.get("shape"), Some(false));
}
