//! `one-verify [--coordinator HEX] FILE`: checks a file of receipts (a JSON list, one receipt, {"receipts": [...]},
//! JSON lines, or replies carrying `receipt`) and the links between consecutive ones; prints a verdict per receipt;
//! exits 0 when all pass and 1 otherwise, like `one verify`.

use one_sdk::{parse_receipts, verify_chain, Value};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (coordinator, file) = match args.as_slice() {
        [flag, key, file] if flag == "--coordinator" => (Some(key.clone()), file.clone()),
        [file] if !file.starts_with("--") => (None, file.clone()),
        _ => {
            eprintln!("usage: verify [--coordinator HEX] FILE");
            std::process::exit(2);
        }
    };
    let read = if file == "-" {
        let mut t = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut t).map(|_| t)
    } else {
        std::fs::read_to_string(&file)
    };
    let text = match read {
        Ok(t) => t,
        Err(e) => {
            eprintln!("verify: {file}: {e}");
            std::process::exit(2);
        }
    };
    let receipts = match parse_receipts(&text) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot read receipts: {e}");
            std::process::exit(1);
        }
    };
    let verdicts = verify_chain(&receipts, coordinator.as_deref());
    let mut all = !verdicts.is_empty();
    for v in &verdicts {
        let seq = match &v.seq {
            Value::Null => "None".to_string(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let short: String = v.hash.chars().take(16).collect();
        if v.ok() {
            println!("seq {seq} {short} valid");
        } else {
            all = false;
            println!("seq {seq} {short} INVALID: {}", v.problems.join("; "));
        }
    }
    println!("{} receipts: {}", verdicts.len(), if all { "all checks pass" } else { "verification FAILED" });
    std::process::exit(if all { 0 } else { 1 });
}
