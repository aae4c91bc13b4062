//! Strict `application/x-www-form-urlencoded` parsing for the OAuth endpoints: a repeated
//! parameter is an error (RFC 6749 §3.1), invalid UTF-8 is an error, and a parameter sent
//! without a value counts as omitted.

use std::collections::HashMap;

use percent_encoding::percent_decode;

#[derive(Debug, Default)]
pub struct Form {
    params: HashMap<String, String>,
}

impl Form {
    pub fn parse(body: &[u8]) -> Result<Form, String> {
        let mut params = HashMap::new();
        for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let (k, v) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &pair[..0]),
            };
            let key = decode(k)?;
            let value = decode(v)?;
            if params.contains_key(&key) {
                return Err(format!("parameter {key:?} is repeated"));
            }
            if params.len() >= 64 {
                return Err("too many parameters".into());
            }
            params.insert(key, value);
        }
        params.retain(|_, v: &mut String| !v.is_empty());
        Ok(Form { params })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }
}

fn decode(raw: &[u8]) -> Result<String, String> {
    let plus_as_space: Vec<u8> = raw.iter().map(|b| if *b == b'+' { b' ' } else { *b }).collect();
    percent_decode(&plus_as_space)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| "request body is not valid UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_decodes() {
        let f = Form::parse(b"grant_type=client_credentials&scope=a+b%3Ac&empty=").expect("parses");
        assert_eq!(f.get("grant_type"), Some("client_credentials"));
        assert_eq!(f.get("scope"), Some("a b:c"));
        assert_eq!(f.get("empty"), None);
    }

    #[test]
    fn refuses_repeats_and_bad_utf8() {
        assert!(Form::parse(b"a=1&a=2").is_err());
        assert!(Form::parse(b"a=%ff%fe").is_err());
        assert!(Form::parse(b"a=\xff").is_err());
    }
}
