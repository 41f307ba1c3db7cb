//! Query strings (`a=1&b=%3A`): the presigned SigV4 parameters, the Lambda REST API's
//! filters and the admin endpoints' arguments all decode them the same way.

/// Query string → percent-decoded `(name, value)` pairs; a name without `=` has an empty value.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Decodes `%XX` escapes and `+` (a space in query strings); invalid escapes stay as they are.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_plus_are_decoded_and_bad_escapes_kept() {
        assert_eq!(
            percent_decode("arn%3Aaws%3Akinesis%3Aus-east-1%3A000000000000%3Astream%2Fs"),
            "arn:aws:kinesis:us-east-1:000000000000:stream/s"
        );
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
        assert_eq!(percent_decode("a%2Fb+c%zz%4"), "a/b c%zz%4");
        assert_eq!(
            parse_query("X=1&&Y&Z=%2F"),
            vec![
                ("X".to_string(), "1".to_string()),
                ("Y".to_string(), String::new()),
                ("Z".to_string(), "/".to_string())
            ]
        );
    }
}
