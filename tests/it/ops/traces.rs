//! Traces over OTLP/HTTP: one `once stock` against a local receiver that decodes the protobuf
//! export, checked for the documented span tree, its attributes, no secret anywhere, and the
//! trace id in the run's log lines.

use super::*;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use prost::Message;

const KEY: &str = "pk_SECRET_traces_0000";

/// A span as the receiver got it: name, ids, and attributes as text.
#[derive(Debug)]
struct Span {
    name: String,
    trace: Vec<u8>,
    id: Vec<u8>,
    parent: Vec<u8>,
    attributes: std::collections::BTreeMap<String, String>,
}

fn decode(bodies: &[Vec<u8>]) -> Vec<Span> {
    let mut out = Vec::new();
    for body in bodies {
        let request = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        for resource in request.resource_spans {
            let service = resource.resource.unwrap().attributes;
            assert!(
                service.iter().any(|kv| kv.key == "service.name"
                    && matches!(&kv.value.as_ref().unwrap().value, Some(Any::StringValue(s)) if s == "finance-cache-warmer")),
                "{service:?}"
            );
            for scope in resource.scope_spans {
                for span in scope.spans {
                    let attributes = span
                        .attributes
                        .iter()
                        .map(|kv| {
                            let value = match kv.value.as_ref().and_then(|v| v.value.clone()) {
                                Some(Any::StringValue(s)) => s,
                                Some(Any::IntValue(i)) => i.to_string(),
                                Some(Any::BoolValue(b)) => b.to_string(),
                                Some(Any::DoubleValue(d)) => d.to_string(),
                                other => format!("{other:?}"),
                            };
                            (kv.key.clone(), value)
                        })
                        .collect();
                    out.push(Span {
                        name: span.name,
                        trace: span.trace_id,
                        id: span.span_id,
                        parent: span.parent_span_id,
                        attributes,
                    });
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn once_stock_exports_the_documented_span_tree_with_no_secret_in_it() {
    let server = redis().await;
    support::watchlist(&server, &[b"AAPL"]).await;
    let upstream = MockServer::start().await;
    Mock::given(path("/v2/snapshot/locale/us/markets/stocks/tickers/AAPL"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            support::fixture("polygon/v2_snapshot_stocks_ticker_AAPL.mock.json"),
            "application/json",
        ))
        .mount(&upstream)
        .await;
    let receiver = MockServer::start().await;
    Mock::given(wiremock::matchers::method("POST"))
        .and(path("/otlp/v1/traces"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let mut cmd = fcw();
    cmd.args(["once", "stock", "--force"])
        .env("FCW_REDIS__URL", server.url())
        .env("FCW_PROVIDER__STOCK", "polygon")
        .env("FCW_PROVIDER__POLYGON__BASE_URL", upstream.uri())
        .env("FCW_PROVIDER__POLYGON__API_KEY", KEY)
        // Under a path, as behind a gateway: the export goes beneath it.
        .env(
            "FCW_TELEMETRY__OTLP_ENDPOINT",
            format!("{}/otlp", receiver.uri()),
        )
        .env("FCW_LOG__FORMAT", "json");
    let (code, _, stderr) = support::run(&mut cmd);
    assert_eq!(code, Some(0), "{stderr}");

    let bodies: Vec<Vec<u8>> = receiver
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            assert_eq!(
                r.headers.get("content-type").unwrap(),
                "application/x-protobuf"
            );
            r.body
        })
        .collect();
    assert!(!bodies.is_empty(), "nothing exported");
    let spans = decode(&bodies);
    let named = |name: &'static str| spans.iter().filter(move |s| s.name == name);
    let runs: Vec<&Span> = named("run").collect();
    assert_eq!(runs.len(), 1, "{spans:#?}");
    let run = runs[0];
    assert!(run.parent.is_empty(), "the run is the root");
    for (key, value) in [
        ("job", "stock"),
        ("outcome", "ok"),
        ("seen", "1"),
        ("written", "1"),
        ("failed", "0"),
    ] {
        assert_eq!(
            run.attributes.get(key).map(String::as_str),
            Some(value),
            "{key}: {run:?}"
        );
    }
    let batch = named("batch")
        .next()
        .unwrap_or_else(|| panic!("no batch span: {spans:#?}"));
    assert_eq!(batch.parent, run.id, "a batch is in its run");
    let request = named("upstream request")
        .next()
        .unwrap_or_else(|| panic!("no request span: {spans:#?}"));
    assert_eq!(request.parent, batch.id, "a request is in its batch");
    for (key, value) in [
        ("provider", "polygon"),
        ("endpoint", "snapshot"),
        ("status", "200"),
        ("retries", "0"),
    ] {
        assert_eq!(
            request.attributes.get(key).map(String::as_str),
            Some(value),
            "{key}: {request:?}"
        );
    }
    let redis_spans: Vec<&Span> = named("redis").collect();
    assert!(
        redis_spans
            .iter()
            .any(|s| s.parent == run.id && s.attributes.contains_key("command")),
        "{redis_spans:#?}"
    );
    for span in &spans {
        // Round trips outside a run (the connection check at start-up) are traces of their own.
        if span.trace != run.trace {
            assert!(span.name == "redis" && span.parent.is_empty(), "{span:?}");
        } else if span.id != run.id {
            assert!(
                !span.parent.is_empty(),
                "everything in the run's trace is under it: {span:?}"
            );
        }
        for value in span.attributes.values() {
            assert!(
                !value.contains(KEY) && !value.contains("http://") && !value.contains("https://"),
                "{span:?}"
            );
        }
    }
    // The run's log lines carry its trace id.
    let trace_id: String = run.trace.iter().map(|b| format!("{b:02x}")).collect();
    let finished = support::summary(&stderr, "stock");
    assert_eq!(
        finished["span"]["trace_id"],
        trace_id.as_str(),
        "{finished}"
    );
    assert!(!stderr.contains(KEY));

    // Quieter logs do not turn the traces off.
    let before = receiver.received_requests().await.unwrap().len();
    let (code, _, stderr) = support::run(cmd.env("FCW_LOG__LEVEL", "warn"));
    assert_eq!(code, Some(0), "{stderr}");
    let bodies: Vec<Vec<u8>> = receiver.received_requests().await.unwrap()[before..]
        .iter()
        .map(|r| r.body.clone())
        .collect();
    assert!(
        decode(&bodies).iter().any(|s| s.name == "run"),
        "no run traced at log.level = warn"
    );
}
