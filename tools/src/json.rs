//! Reading values back from the flat JSON objects `osiris bench` prints (one
//! level, no escapes in strings, no repeated keys at the top): enough for the
//! matrix and the tests, without a JSON dependency.

/// A number at `key`, or `None` if the key is missing or not a number.
pub fn number(json: &str, key: &str) -> Option<f64> {
    let start = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &json[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

/// A number at `key` inside the object at `object`.
pub fn nested(json: &str, object: &str, key: &str) -> Option<f64> {
    let start = json.find(&format!("\"{object}\":{{"))?;
    number(&json[start..], key)
}

/// A string at `key`.
pub fn text<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let start = json.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let rest = &json[start..];
    Some(&rest[..rest.find('"')?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_numbers_strings_and_nested_numbers() {
        let json = r#"{"kind":"ordered","size":64,"ratio":2.125,"rtt":{"p50_us":12.5},"last":-1}"#;
        assert_eq!(text(json, "kind"), Some("ordered"));
        assert_eq!(number(json, "size"), Some(64.0));
        assert_eq!(number(json, "ratio"), Some(2.125));
        assert_eq!(number(json, "last"), Some(-1.0));
        assert_eq!(nested(json, "rtt", "p50_us"), Some(12.5));
        assert_eq!(number(json, "kind"), None);
        assert_eq!(number(json, "missing"), None);
        assert_eq!(text(json, "size"), None);
    }
}
