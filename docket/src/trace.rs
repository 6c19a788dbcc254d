//! Trace context that travels with a task, so its execution links to where it was scheduled:
//! across processes, and for tasks due hours later.
//!
//! The context is a W3C `traceparent` stored in the task's payload. Without the
//! `opentelemetry` feature docket makes its own: the trace id of the task running the schedule
//! call (so follow-up work stays in one trace) or a fresh one, and a fresh span id standing for
//! the schedule call. The `docket.schedule` span records both as `trace_id` and `span_id`; the
//! `docket.task` span records `trace_id` and, as `link`, the scheduling span id. With the
//! `opentelemetry` feature the context is the OpenTelemetry context of the scheduling span, and
//! the execution span gets a real span link to it.

use std::fmt;

/// A W3C trace context: which trace, and which span in it scheduled the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TraceContext {
    pub(crate) trace_id: u128,
    pub(crate) span_id: u64,
    pub(crate) sampled: bool,
}

tokio::task_local! {
    /// The trace of the task running on this tokio task, for what it schedules.
    static CURRENT: TraceContext;
}

impl TraceContext {
    /// The context for a schedule call made now.
    pub(crate) fn for_schedule() -> TraceContext {
        #[cfg(feature = "opentelemetry")]
        if let Some(context) = otel::current() {
            return context;
        }
        let running = CURRENT.try_with(|context| *context).ok();
        TraceContext {
            trace_id: running.map_or_else(random_u128, |context| context.trace_id),
            span_id: random_u64(),
            sampled: running.is_none_or(|context| context.sampled),
        }
    }

    /// Parse a `traceparent` header value; `None` when it is not one. Version `00` has fixed
    /// places: `00-`, 32 digits of trace id, `-`, 16 of span id, `-`, 2 of flags (and
    /// anything after a further `-` is left alone, as a later version may add parts).
    pub(crate) fn parse(text: &str) -> Option<TraceContext> {
        let text = text.as_bytes();
        let shaped = text.len() >= 55
            && text.get(55).is_none_or(|&byte| byte == b'-')
            && text.starts_with(b"00-")
            && text[35] == b'-'
            && text[52] == b'-';
        if !shaped {
            return None;
        }
        let context = TraceContext {
            trace_id: u128::from(hex(&text[3..19])?) << 64 | u128::from(hex(&text[19..35])?),
            span_id: hex(&text[36..52])?,
            sampled: hex(&text[53..55])? & 1 == 1,
        };
        (context.trace_id != 0 && context.span_id != 0).then_some(context)
    }

    pub(crate) fn trace_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    pub(crate) fn span_hex(&self) -> String {
        format!("{:016x}", self.span_id)
    }

    /// Run `future` as part of this trace: what it schedules joins the trace.
    pub(crate) async fn scope<F: Future>(self, future: F) -> F::Output {
        CURRENT.scope(self, future).await
    }
}

/// The value of at most 16 hex digits (either case); `None` for any other byte. A worker reads
/// one trace context per task: `from_str_radix` took several times as long, and a `u128` fold
/// over `char::to_digit` twice as long.
fn hex(digits: &[u8]) -> Option<u64> {
    debug_assert!(digits.len() <= 16);
    digits.iter().try_fold(0u64, |value, &byte| {
        let digit = match byte {
            b'0'..=b'9' => byte - b'0',
            b'a'..=b'f' => byte - b'a' + 10,
            b'A'..=b'F' => byte - b'A' + 10,
            _ => return None,
        };
        Some(value << 4 | u64::from(digit))
    })
}

impl fmt::Display for TraceContext {
    /// The `traceparent` form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }
}

/// A random non-zero id. Not cryptographic: ids only need not to collide.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut hasher = std::hash::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    hasher.finish().max(1)
}

fn random_u128() -> u128 {
    (u128::from(random_u64()) << 64) | u128::from(random_u64())
}

/// The OpenTelemetry side, with the `opentelemetry` feature.
#[cfg(feature = "opentelemetry")]
pub(crate) mod otel {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use super::TraceContext;

    /// The OpenTelemetry context of the current span, when it has a valid one.
    pub(crate) fn current() -> Option<TraceContext> {
        let context = tracing::Span::current().context();
        let span = context.span();
        let span_context = span.span_context();
        span_context.is_valid().then(|| TraceContext {
            trace_id: u128::from_be_bytes(span_context.trace_id().to_bytes()),
            span_id: u64::from_be_bytes(span_context.span_id().to_bytes()),
            sampled: span_context.is_sampled(),
        })
    }

    /// Link `span` to the span that scheduled its task.
    pub(crate) fn link(span: &tracing::Span, scheduled_by: &TraceContext) {
        let flags = match scheduled_by.sampled {
            true => TraceFlags::SAMPLED,
            false => TraceFlags::default(),
        };
        let remote = SpanContext::new(
            TraceId::from_bytes(scheduled_by.trace_id.to_be_bytes()),
            SpanId::from_bytes(scheduled_by.span_id.to_be_bytes()),
            flags,
            true,
            TraceState::default(),
        );
        span.add_link(remote);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_round_trip_and_reject_garbage() {
        let context = TraceContext {
            trace_id: 0x4bf92f3577b34da6a3ce929d0e0e4736,
            span_id: 0x00f067aa0ba902b7,
            sampled: true,
        };
        let text = context.to_string();
        assert_eq!(
            text,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        assert_eq!(TraceContext::parse(&text), Some(context));
        assert_eq!(
            TraceContext::parse(&text.to_uppercase()),
            Some(context),
            "hex digits in either case"
        );
        assert_eq!(
            TraceContext::parse(&format!("{text}-later")),
            Some(context),
            "a part a later version adds is left alone"
        );
        for garbage in [
            "",
            "00-0000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-zzf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // A sign, which `from_str_radix` would take, and a character beyond ASCII.
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-+0f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-+1",
            "00-4bf92f3577b34da6a3ce929d0e0e473é-00f067aa0ba902b7-01",
            // Parts of the wrong lengths, the dashes moved.
            "00-4bf92f3577b34da6a3ce929d0e0e47360-0f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "000-bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(garbage), None, "{garbage:?}");
        }
    }

    #[tokio::test]
    async fn work_scheduled_by_a_task_stays_in_its_trace() {
        let outer = TraceContext::for_schedule();
        let inner = outer.scope(async { TraceContext::for_schedule() }).await;
        assert_eq!(inner.trace_id, outer.trace_id);
        assert_ne!(inner.span_id, outer.span_id);
        assert_ne!(TraceContext::for_schedule().trace_id, outer.trace_id);
    }
}
