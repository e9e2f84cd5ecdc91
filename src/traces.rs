//! Traces over OTLP/HTTP, for an OpenTelemetry Collector, Grafana Tempo or Alloy, or any OTLP
//! backend: off unless `telemetry.otlp_endpoint` is set.
//!
//! Every run is a trace: the `run` span (job, run id, counts), a `batch` span per batch of
//! fetches, an `upstream request` span per HTTP request (provider, endpoint, status, retries:
//! never a URL, which could carry a secret) and a `redis` span per Redis round trip. The spans
//! below `run` have their own target, [`TARGET`], which the log output leaves out: a log line
//! keeps naming its run, not the request it happened in. The run's trace id goes into its log
//! lines' span fields (`trace_id`), so a log line leads to its trace.

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The target of the spans inside a run, which only traces show.
pub const TARGET: &str = "fcw::trace";
/// The service name traces are filed under.
const SERVICE: &str = "finance-cache-warmer";
/// An export that takes longer is dropped: a slow collector must not hold the process up.
const EXPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The exporter, kept to flush what is buffered when the process ends.
pub struct Traces(Option<SdkTracerProvider>);

impl Traces {
    pub fn off() -> Traces {
        Traces(None)
    }

    /// Sends what is still buffered; called once at exit.
    pub fn shutdown(self) {
        if let Some(provider) = self.0
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "could not send the last traces");
        }
    }
}

/// The tracing layer that exports spans to `endpoint` (its `/v1/traces`), and the handle that
/// flushes it. Must be called outside the async runtime: the exporter's client blocks, on the
/// batch processor's own thread.
pub fn exporter<S>(
    endpoint: &url::Url,
) -> Result<
    (
        tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>,
        Traces,
    ),
    String,
>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    // Beneath whatever path the endpoint has (a gateway's `/otlp`, say), as OTLP exporters do.
    let url = format!("{}/v1/traces", endpoint.as_str().trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(url)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| format!("telemetry.otlp_endpoint: {e}"))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(SERVICE)
                .build(),
        )
        .build();
    let tracer = provider.tracer(SERVICE);
    Ok((
        tracing_opentelemetry::layer().with_tracer(tracer),
        Traces(Some(provider)),
    ))
}

/// Puts the trace id of `span` (a run) into its `trace_id` field, when it is traced.
pub fn record_trace_id(span: &tracing::Span) {
    let context = span.context();
    let trace = context.span().span_context().trace_id();
    if trace != opentelemetry::trace::TraceId::INVALID {
        span.record("trace_id", tracing::field::display(trace));
    }
}
