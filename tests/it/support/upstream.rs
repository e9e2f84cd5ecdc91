//! Local upstreams: Yahoo's endpoints answering in the recorded shapes, and one that
//! misbehaves on purpose.

use super::data::fixture;

/// Answers a Yahoo v7 quote request for whatever symbols it asks: the recorded AAPL quote
/// (`tests/fixtures/yahoo/quote_AAPL_2026-10.json`) relabelled per symbol, so any watchlist gets
/// answers in exactly the recorded shape. The entry is serialised once, so the server side of a
/// benchmark costs little.
pub struct RecordedQuotes {
    /// The recorded entry as JSON, split around its symbol.
    before: String,
    after: String,
    delay: std::time::Duration,
}

impl RecordedQuotes {
    pub fn new(delay: std::time::Duration) -> RecordedQuotes {
        let recorded: serde_json::Value =
            serde_json::from_slice(&fixture("yahoo/quote_AAPL_2026-10.json")).unwrap();
        let mut entry = recorded["quoteResponse"]["result"][0].clone();
        entry["symbol"] = "\u{1}SYMBOL\u{1}".into();
        let text = serde_json::to_string(&entry).unwrap();
        let (before, after) = text.split_once("\\u0001SYMBOL\\u0001").unwrap();
        RecordedQuotes {
            before: before.to_owned(),
            after: after.to_owned(),
            delay,
        }
    }
}

impl RecordedQuotes {
    /// The answer for `symbols` (comma-separated), in the recorded shape.
    pub fn body_for(&self, symbols: &str) -> String {
        let entries: Vec<String> = symbols
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| format!("{}{}{}", self.before, s, self.after))
            .collect();
        format!(
            r#"{{"quoteResponse":{{"result":[{}],"error":null}}}}"#,
            entries.join(",")
        )
    }
}

impl wiremock::Respond for RecordedQuotes {
    fn respond(&self, request: &wiremock::Request) -> wiremock::ResponseTemplate {
        let symbols = request
            .url
            .query_pairs()
            .find(|(k, _)| k == "symbols")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let body = self.body_for(&symbols);
        wiremock::ResponseTemplate::new(200)
            .set_body_raw(body, "application/json")
            .set_delay(self.delay)
    }
}

/// Mounts Yahoo's session endpoints on `server` as recorded: `/cookie` (404, as fc.yahoo.com
/// answers) and `/v1/test/getcrumb` (tests/fixtures/yahoo/getcrumb_ok.txt).
pub async fn mount_yahoo_session(server: &wiremock::MockServer) {
    use wiremock::matchers::path;
    use wiremock::{Mock, ResponseTemplate};
    Mock::given(path("/cookie"))
        .respond_with(ResponseTemplate::new(404))
        .mount(server)
        .await;
    Mock::given(path("/v1/test/getcrumb"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(fixture("yahoo/getcrumb_ok.txt"), "text/plain"),
        )
        .mount(server)
        .await;
}

/// Yahoo's cookie and crumb endpoints as recorded, and the quote endpoint answering with
/// `quote` (whatever symbols are asked).
pub async fn yahoo(quote: impl wiremock::Respond + 'static) -> wiremock::MockServer {
    use wiremock::matchers::path;
    let server = wiremock::MockServer::start().await;
    mount_yahoo_session(&server).await;
    wiremock::Mock::given(path("/v7/finance/quote"))
        .respond_with(quote)
        .mount(&server)
        .await;
    server
}

/// How the chaos upstream answers one quote request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chaos {
    Fine,
    ServerError,
    /// 429 with `Retry-After: 1`.
    TooManyRequests,
    /// The connection is reset (RST) without an answer.
    Reset,
    /// No answer until long after the client's timeout.
    Hang,
    /// Headers promise more body than is sent before the connection closes.
    Truncated,
    /// A JSON body labelled `text/html`.
    WrongContentType,
    /// Valid JSON in the recorded shape, for other symbols than asked.
    OtherSymbols,
    /// A 50 MB body.
    Huge,
}

/// A Yahoo-like upstream that answers quote requests with `modes`, in a loop, and records when
/// each request arrived and how it was answered. Cookie and crumb requests are answered as
/// recorded. Plain HTTP/1.1, one request per connection, so it can misbehave at the socket level.
pub struct ChaosUpstream {
    pub uri: String,
    /// When each data request arrived, how it was answered, and its path.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<(std::time::Instant, Chaos, String)>>>,
}

impl ChaosUpstream {
    pub async fn start(modes: Vec<Chaos>) -> ChaosUpstream {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = format!("http://{}", listener.local_addr().unwrap());
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let quotes = std::sync::Arc::new(RecordedQuotes::new(std::time::Duration::ZERO));
        let crumb = String::from_utf8(fixture("yahoo/getcrumb_ok.txt")).unwrap();
        let (seen, next) = (
            log.clone(),
            std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        );
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let (seen, next, quotes, modes, crumb) = (
                    seen.clone(),
                    next.clone(),
                    quotes.clone(),
                    modes.clone(),
                    crumb.clone(),
                );
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let target = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let respond = |status: &str, content_type: &str, body: &str| {
                        format!(
                            "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    };
                    if target.starts_with("/cookie") {
                        let _ = socket
                            .write_all(respond("404 Not Found", "text/html", "").as_bytes())
                            .await;
                        return;
                    }
                    if target.starts_with("/v1/test/getcrumb") {
                        let _ = socket
                            .write_all(respond("200 OK", "text/plain", &crumb).as_bytes())
                            .await;
                        return;
                    }
                    let symbols = url::Url::parse(&format!("http://x{target}"))
                        .ok()
                        .and_then(|u| {
                            u.query_pairs()
                                .find(|(k, _)| k == "symbols")
                                .map(|(_, v)| v.into_owned())
                        })
                        .unwrap_or_default();
                    let mode =
                        modes[next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % modes.len()];
                    let path = target.split('?').next().unwrap_or_default().to_owned();
                    seen.lock()
                        .unwrap()
                        .push((std::time::Instant::now(), mode, path));
                    let reply = match mode {
                        Chaos::Fine => respond("200 OK", "application/json", &quotes.body_for(&symbols)),
                        Chaos::ServerError => respond("500 Internal Server Error", "text/plain", "oops"),
                        Chaos::TooManyRequests => "HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned(),
                                                Chaos::Reset => {
                            // A zero linger makes the close a reset; with zero it never blocks,
                            // which is what the deprecation warns about.
                            #[allow(deprecated)]
                            let _ = socket.set_linger(Some(std::time::Duration::ZERO));
                            return;
                        }
                        Chaos::Hang => {
                            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                            return;
                        }
                        Chaos::Truncated => {
                            let body = quotes.body_for(&symbols);
                            format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}", body.len(), &body[..body.len() / 3])
                        }
                        Chaos::WrongContentType => respond("200 OK", "text/html", &quotes.body_for(&symbols)),
                        Chaos::OtherSymbols => {
                            let others: Vec<String> = symbols.split(',').map(|s| format!("X{s}")).collect();
                            respond("200 OK", "application/json", &quotes.body_for(&others.join(",")))
                        }
                        Chaos::Huge => {
                                                        // No length: the body runs until the connection closes, so only a
                            // cap on what is read can stop it.
                            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n";
                            if socket.write_all(head.as_bytes()).await.is_err() {
                                return;
                            }
                            let chunk = vec![b' '; 64 * 1024];
                            for _ in 0..(50 << 20) / chunk.len() {
                                if socket.write_all(&chunk).await.is_err() {
                                    return;
                                }
                            }
                            return;
                        }
                    };
                    let _ = socket.write_all(reply.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        ChaosUpstream { uri, log }
    }
}
