//! Yahoo's consent wall, walked as its public clients walk it (yfinance's csrf strategy,
//! yahoo-finance2's `getCrumb`): from the redirect into `guce.yahoo.com/consent`, on to the
//! form at `consent.yahoo.com/v2/collectConsent`, which is posted back with its hidden fields
//! and `agree=agree`; the answer leads through `copyConsent`, which sets the session cookies.
//! Hosts in the EU (or addresses Yahoo places there) get no crumb without this.

use reqwest::header::{ACCEPT, HeaderMap, HeaderValue, REFERER};
use url::Url;

use crate::provider::http::{Policy, Upstream};

/// Redirects and pages followed through the consent flow at most (the recorded flow has five).
const MAX_STEPS: usize = 8;
/// Requests for a page ask for one, as a browser navigating there would.
pub(super) const PAGE_ACCEPT: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// Yahoo's consent pages (`guce.yahoo.com/consent`, `consent.yahoo.com/v2/collectConsent`,
/// `copyConsent`): a host or a path that says so.
pub(super) fn is_consent_page(url: &Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    host.starts_with("guce.") || host.starts_with("consent.") || url.path().contains("onsent")
}

/// Walks the consent pages from `start`; `Ok` once they lead back out (the cookies are set in
/// the client's jar), else why not.
pub(super) async fn accept(upstream: &Upstream, start: Url) -> Result<(), String> {
    let mut page = HeaderMap::new();
    page.insert(ACCEPT, HeaderValue::from_static(PAGE_ACCEPT));
    let mut url = start;
    let mut posted = false;
    for _ in 0..MAX_STEPS {
        if !is_consent_page(&url) {
            // Out of the consent pages: copyConsent has set the cookies.
            return Ok(());
        }
        let reply = upstream
            .get_with("consent", &url, &page, Policy::Once)
            .await
            .map_err(|e| e.to_string())?;
        let reply = match (reply.status, posted) {
            (300..=399, _) => reply,
            (200, false) => {
                let fields = form_fields(&reply.text());
                if !fields.iter().any(|(name, _)| name == "csrfToken") {
                    return Err("the consent page has no consent form".into());
                }
                posted = true;
                let mut form = fields;
                form.push(("agree".into(), "agree".into()));
                form.push(("agree".into(), "agree".into()));
                let mut headers = page.clone();
                if let Ok(referer) = HeaderValue::from_str(url.as_str()) {
                    headers.insert(REFERER, referer);
                }
                upstream
                    .post_form("consent", &url, &headers, &form)
                    .await
                    .map_err(|e| e.to_string())?
            }
            // After the form, the client follows copyConsent's redirect out of the consent
            // pages by itself: wherever that ends, the cookies were set on the way.
            (_, true) => return Ok(()),
            (status, false) => return Err(format!("a consent page answered HTTP {status}")),
        };
        url = match reply.location.as_deref().map(|l| url.join(l)) {
            Some(Ok(next)) if (300..=399).contains(&reply.status) => next,
            _ => return Err(format!("the consent form answered HTTP {}", reply.status)),
        };
    }
    Err("the consent pages went round in circles".into())
}

/// The hidden fields of a page's first form, names and values with HTML entities decoded.
fn form_fields(html: &str) -> Vec<(String, String)> {
    let Some(start) = html.find("<form") else {
        return Vec::new();
    };
    let form = &html[start..];
    let form = &form[..form.find("</form>").unwrap_or(form.len())];
    form.split("<input")
        .skip(1)
        .filter_map(|tag| {
            let tag = &tag[..tag.find('>')?];
            if attribute(tag, "type")? != "hidden" {
                return None;
            }
            Some((
                attribute(tag, "name")?,
                attribute(tag, "value").unwrap_or_default(),
            ))
        })
        .collect()
}

/// A double-quoted attribute of a tag, decoded.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    let end = tag[start..].find('"')? + start;
    Some(decode_entities(&tag[start..end]))
}

/// `&amp;`, `&quot;`, `&lt;`, `&gt;`, `&#39;` and numeric entities (`&#x3D;` is in the
/// recorded form's `originalDoneUrl`).
fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let decoded = rest.find(';').and_then(|end| {
            let entity = &rest[1..end];
            let c = match entity {
                "amp" => Some('&'),
                "quot" => Some('"'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "apos" => Some('\''),
                _ => entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                    .map(|hex| u32::from_str_radix(hex, 16))
                    .or_else(|| entity.strip_prefix('#').map(str::parse))
                    .and_then(Result::ok)
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_fields_of_the_first_form_are_read_and_decoded() {
        let html = r#"<p><input type="hidden" name="outside" value="x"></p>
            <form method="post" class="consent-form" action="">
            <input type="hidden" name="csrfToken" value="GoNrer0">
            <input type="hidden" name="originalDoneUrl" value="https://finance.yahoo.com/quote/AAPL?guccounter&#x3D;1&amp;a=&#39;b&#39;">
            <input type="text" name="visible" value="no">
            <button type="submit" name="agree" value="agree">Accept</button>
            </form><form><input type="hidden" name="second" value="no"></form>"#;
        assert_eq!(
            form_fields(html),
            [
                ("csrfToken".to_owned(), "GoNrer0".to_owned()),
                (
                    "originalDoneUrl".to_owned(),
                    "https://finance.yahoo.com/quote/AAPL?guccounter=1&a='b'".to_owned()
                ),
            ]
        );
        assert_eq!(decode_entities("a &bogus; & b &#61;"), "a &bogus; & b =");
    }
}
