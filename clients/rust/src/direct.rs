//! The edge host's direct path (PROTOCOL.md, "The direct path"): a socket on
//! `/session/new` or `/session/<id>` ends in one session's object, so a resume must connect to
//! the token's session's own URL.

/// The URL a resume connects to: `url`, except on the edge host's direct path (a URL whose
/// path ends in `/session/new` or `/session/<id>`), where it is `/session/<the token's
/// session ID>` (a token is `<sessionID>.<playerID>.<secret>`). Query and fragment are kept.
pub fn resume_url(url: &str, token: &str) -> String {
    let session = token.split('.').next().unwrap_or("");
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    // The path: after the authority (`scheme://host[:port]`), before `?` or `#`.
    let Some(authority) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let Some(path_start) = url[authority..end].find('/').map(|i| authority + i) else {
        return url.to_owned();
    };
    let path = &url[path_start..end];
    const MARK: &str = "/session/";
    let Some(cut) = path.rfind(MARK).map(|i| i + MARK.len()) else {
        return url.to_owned();
    };
    let last = &path[cut..];
    if !digits(session) || !(last == "new" || digits(last)) {
        return url.to_owned();
    }
    format!("{}{session}{}", &url[..path_start + cut], &url[end..])
}

#[cfg(test)]
mod tests {
    use super::resume_url;

    const TOKEN: &str = "7836885832153556.6285174569832602.8720b9be0230134ccf6c6ea7c214395a";

    #[test]
    fn a_direct_url_resumes_on_the_tokens_session_and_any_other_is_kept() {
        let to = |url| resume_url(url, TOKEN);
        assert_eq!(
            to("wss://h.example/session/new"),
            "wss://h.example/session/7836885832153556"
        );
        assert_eq!(
            to("wss://h.example/session/41"),
            "wss://h.example/session/7836885832153556"
        );
        assert_eq!(
            to("ws://127.0.0.1:8787/game/session/new?k=v#f"),
            "ws://127.0.0.1:8787/game/session/7836885832153556?k=v#f"
        );
        for url in [
            "wss://h.example/",
            "wss://h.example",
            "wss://h.example/sessions/new",
            "wss://h.example/session/new/x",
            "wss://h.example/session/4a",
            "wss://h.example/?session/new",
            "ws://session/new",
            "not a url/session/new",
        ] {
            assert_eq!(to(url), url);
        }
        assert_eq!(
            resume_url("wss://h.example/session/new", "garbage"),
            "wss://h.example/session/new"
        );
    }
}
