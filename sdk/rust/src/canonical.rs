//! RFC 8785 (JCS) canonical JSON over `serde_json::Value`: keys sorted by UTF-16 code units, no whitespace,
//! numbers as IEEE doubles written the way ECMAScript's `Number.prototype.toString` writes them, strings with only
//! the escapes JCS allows.

use serde_json::Value;

/// The RFC 8785 bytes of a JSON value; Err for a number with no JSON form (NaN, infinities).
pub fn canonical(value: &Value) -> Result<Vec<u8>, String> {
    let mut out = String::new();
    write_value(&mut out, value)?;
    Ok(out.into_bytes())
}

/// `canonical` over JSON text.
pub fn canonicalize_json(text: &str) -> Result<Vec<u8>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    canonical(&value)
}

/// A double as ECMAScript writes it (RFC 8785 section 3.2.2.3): the shortest digits that round-trip, plain
/// notation from 1e-6 up to 1e21, exponent notation (1e+21, 1e-7) outside.
pub fn format_number(f: f64) -> Result<String, String> {
    if !f.is_finite() {
        return Err(format!("{f} has no JSON form"));
    }
    if f == 0.0 {
        return Ok("0".into()); // -0 too
    }
    let abs = f.abs();
    if !(1e-6..1e21).contains(&abs) {
        let s = format!("{f:e}"); // Rust writes 1e21, 1.5e300, 1e-7
        let (mantissa, exp) = s.split_once('e').unwrap();
        let sign = if exp.starts_with('-') { "" } else { "+" };
        return Ok(format!("{mantissa}e{sign}{exp}"));
    }
    Ok(format!("{f}"))
}

fn write_value(out: &mut String, value: &Value) -> Result<(), String> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let f = n.as_f64().ok_or_else(|| format!("number {n} is not an IEEE double"))?;
            out.push_str(&format_number(f)?);
        }
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, k);
                out.push(':');
                write_value(out, &map[k.as_str()])?;
            }
            out.push('}');
        }
    }
    Ok(())
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}
