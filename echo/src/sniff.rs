//! Tells HTTP from other TCP traffic by the first bytes a client sends, so one
//! port serves curl, wrk and a plain `nc` alike.

/// Request methods of HTTP/1.x, plus the HTTP/2 prior-knowledge preface.
const PREFIXES: &[&[u8]] = &[
    b"GET ",
    b"HEAD ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
    b"PRI * HTTP/2",
];

/// True when `first` is the beginning of an HTTP request. A short read that
/// is a prefix of a method (e.g. `GE`) counts as HTTP too.
pub(crate) fn looks_like_http(first: &[u8]) -> bool {
    !first.is_empty()
        && PREFIXES.iter().any(|p| {
            let n = first.len().min(p.len());
            first[..n] == p[..n]
        })
}

#[cfg(test)]
mod tests {
    use super::looks_like_http;

    #[test]
    fn detects_methods_and_h2c() {
        for yes in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"POST /x",
            b"PRI * HTTP/2.0",
            b"GE",
            b"DELETE ",
        ] {
            assert!(looks_like_http(yes), "{:?}", String::from_utf8_lossy(yes));
        }
        for no in [&b""[..], b"ping\n", b"get / HTTP/1.1", b"\x00\x01", b"GETX"] {
            assert!(!looks_like_http(no), "{:?}", String::from_utf8_lossy(no));
        }
    }
}
