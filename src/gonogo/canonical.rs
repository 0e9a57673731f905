//! Canonical JSON, the form a packet's hash is taken over: object members sorted by key (byte
//! order), no whitespace, strings and numbers as `serde_json` writes them. Any JSON library
//! that sorts keys and writes compactly reproduces it for the packets Pactum writes (their
//! numbers are integers).

use serde_json::Value;

/// `value` in canonical form.
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    write(value, &mut out);
    out
}

fn write(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut members: Vec<_> = map.iter().collect();
            members.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, member)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write(member, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn keys_are_sorted_at_every_depth_and_nothing_is_spaced() {
        let value = json!({ "b": [ { "z": 1, "a": "x\"y" } ], "a": null, "A": true });
        assert_eq!(super::to_string(&value), r#"{"A":true,"a":null,"b":[{"a":"x\"y","z":1}]}"#);
    }
}
