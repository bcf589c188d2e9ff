//! Where to go after logging in. Only a path on this site is followed: a browser turns far more
//! than `//host` into another site (it strips tabs and newlines, reads `\` as `/`), so anything
//! unusual is refused rather than cleaned up.

/// Longest `next=` value followed.
const MAX_NEXT: usize = 2048;

fn plain(s: &str) -> bool {
    s.starts_with('/')
        && !s.starts_with("//")
        && !s
            .chars()
            .any(|c| c == '\\' || c.is_control() || c.is_whitespace())
}

/// Percent-decodes `s` once (invalid escapes stay as they are).
fn decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// `next` if it is a local path: it starts with one `/`, has no scheme, no `//` at its start,
/// no backslash, no control character and no whitespace anywhere, and none of these appear once
/// it is percent-decoded either (`/%09/evil.example`, `/%2F/evil.example`).
pub fn local_path(next: &str) -> Option<&str> {
    if next.len() > MAX_NEXT || !plain(next) {
        return None;
    }
    let decoded = String::from_utf8_lossy(&decode(next)).into_owned();
    plain(&decoded).then_some(next)
}

/// The path to redirect to after login: `next` when it is a local path other than the login
/// page itself, else `/`.
pub fn safe_next(next: Option<&str>) -> String {
    match next.and_then(local_path) {
        Some(p) if !p.starts_with("/login") => p.to_owned(),
        _ => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_pass() {
        for ok in [
            "/",
            "/messages?page=2&status=delivered",
            "/messages/0b7e-1",
            "/admin/users#x",
            "/a%41b",
        ] {
            assert_eq!(local_path(ok), Some(ok), "{ok}");
            assert_eq!(safe_next(Some(ok)), ok);
        }
    }

    #[test]
    fn anything_that_could_leave_the_site_is_refused() {
        for bad in [
            "//evil.example",
            "///evil.example",
            "https://evil.example",
            "http:/evil.example",
            "javascript:alert(1)",
            "evil.example",
            "",
            "/\\evil.example",
            "/\\/evil.example",
            "\\\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r/evil.example",
            "/ /evil.example",
            "/\u{a0}/evil.example",
            "/\u{2028}/evil.example",
            "/messages\u{0}",
            "/%09/evil.example",
            "/%0a/evil.example",
            "/%0D/evil.example",
            "/%20/evil.example",
            "/%2F/evil.example",
            "/%2f%2fevil.example",
            "/%5C/evil.example",
            "/%5c%5cevil.example",
        ] {
            assert_eq!(local_path(bad), None, "{bad:?}");
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(local_path(&format!("/{}", "a".repeat(MAX_NEXT))), None);
    }

    #[test]
    fn the_login_page_is_not_a_target() {
        assert_eq!(safe_next(Some("/login?next=/x")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn decoding_handles_truncated_escapes() {
        assert_eq!(decode("/a%2"), b"/a%2");
        assert_eq!(decode("/a%zz"), b"/a%zz");
        assert_eq!(decode("/%41"), b"/A");
        assert_eq!(local_path("/a%"), Some("/a%"));
    }
}
