//! How ids, codes, addresses and filters are placed into a call's URL.
//!
//! Every value is percent-encoded with the character set of JavaScript's
//! `encodeURIComponent`, the one NotifyBC itself uses, so the requests are the ones
//! NotifyBC's own inbound server sent, and a crafted value can never add a path segment, a
//! query parameter or a fragment. Ids that the URL standard would resolve as a dot segment
//! (`.`, `..`) are refused before any request is made.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::ApiError;

/// What JavaScript's `encodeURIComponent` leaves alone: letters, digits and `-_.!~*'()`.
/// Used for path segments and query components alike; `/`, `?`, `#`, `%`, `&`, `=` and
/// everything non-ASCII are always escaped.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// Encodes one path segment. `.` and `..` are refused: the URL parser would resolve them
/// (escaped or not) and the request would reach another path.
pub(super) fn path_segment(value: &str) -> Result<String, ApiError> {
    if value.is_empty() || value.trim_matches('.').is_empty() {
        return Err(ApiError::InvalidId {
            value: value.to_string(),
        });
    }
    Ok(utf8_percent_encode(value, URI_COMPONENT).collect())
}

/// Encodes one query component (a value after `=`).
pub(super) fn query_component(value: &str) -> String {
    // Collected piece by piece: `to_string` would go through the formatting machinery
    // once per escaped character, and a filter is mostly escaped characters.
    utf8_percent_encode(value, URI_COMPONENT).collect()
}

/// The `err` query parameter of a redirect target, if any. A relative `Location` is
/// resolved against the API base.
pub(super) fn redirect_err(base: &str, location: &str) -> Option<String> {
    let url = url::Url::parse(location)
        .or_else(|_| url::Url::parse(base).and_then(|b| b.join(location)))
        .ok()?;
    url.query_pairs()
        .find(|(k, _)| k == "err")
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_encode_uri_component() {
        assert_eq!(query_component("bar@foo.com"), "bar%40foo.com");
        assert_eq!(
            query_component("a b/c?d#e%f&g=h+i"),
            "a%20b%2Fc%3Fd%23e%25f%26g%3Dh%2Bi"
        );
        assert_eq!(query_component("-_.!~*'()"), "-_.!~*'()");
        assert_eq!(query_component("é"), "%C3%A9");
        assert_eq!(path_segment("5f3e_a.b~c").unwrap(), "5f3e_a.b~c");
        assert_eq!(path_segment("a/../b").unwrap(), "a%2F..%2Fb");
        for bad in ["", ".", "..", "..."] {
            assert!(matches!(path_segment(bad), Err(ApiError::InvalidId { .. })));
        }
    }

    #[test]
    fn redirect_err_is_found() {
        let base = "http://localhost:3000/api";
        assert_eq!(
            redirect_err(
                base,
                "https://x.example/unsub?channel=email&err=Forbidden%21"
            ),
            Some("Forbidden!".to_string())
        );
        assert_eq!(
            redirect_err(base, "https://x.example/unsub?channel=email"),
            None
        );
        assert_eq!(
            redirect_err(base, "/done?channel=email&err=HttpException"),
            Some("HttpException".to_string())
        );
        assert_eq!(redirect_err(base, ""), None);
    }
}
