//! A tracing layer that keeps every span and event, so a test can assert on what docket traced.
//!
//! Install it for the current thread only (`tracing::subscriber::set_default`), so tests running
//! side by side each see their own traces. Work that runs on other threads is not captured: put
//! the code under test on a current-thread runtime when its spawned tasks matter.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, Once};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::NoSubscriber;
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context as LayerContext, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// Spans and events seen so far. Clones share them.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    seen: Arc<Mutex<Seen>>,
}

#[derive(Debug, Default)]
struct Seen {
    spans: Vec<CapturedSpan>,
    events: Vec<CapturedEvent>,
    /// Open spans: tracing's id to the index in `spans`. Ids are reused once a span closes.
    open: HashMap<Id, usize>,
}

/// A span with every field recorded on it, when it was created or later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedSpan {
    pub name: &'static str,
    pub fields: BTreeMap<String, String>,
}

/// An event: its message and the span it happened in.
#[derive(Debug, Clone)]
pub struct CapturedEvent {
    pub message: String,
    /// Index into the captured spans.
    span: Option<usize>,
}

impl Capture {
    pub fn new() -> Capture {
        Capture::default()
    }

    /// A subscriber that feeds this capture, for `tracing::subscriber::set_default`.
    pub fn subscriber(&self) -> impl Subscriber + Send + Sync + 'static {
        // tracing decides once per callsite whether anyone listens. While a single subscriber is
        // registered, it asks only the subscriber of the thread that reaches the callsite first,
        // so a span first entered by another test's thread would stay disabled for this one. A
        // global no-op subscriber keeps two registered, and then every live one is asked.
        static GLOBAL: Once = Once::new();
        GLOBAL.call_once(|| {
            let _ = tracing::subscriber::set_global_default(NoSubscriber::default());
        });
        tracing_subscriber::registry().with(self.clone())
    }

    /// Every span named `name`, in the order they were created.
    pub fn spans(&self, name: &str) -> Vec<CapturedSpan> {
        self.seen()
            .spans
            .iter()
            .filter(|span| span.name == name)
            .cloned()
            .collect()
    }

    /// The messages of the events inside a span named `span`.
    pub fn messages_in(&self, span: &str) -> Vec<String> {
        let seen = self.seen();
        seen.events
            .iter()
            .filter(|event| {
                event
                    .span
                    .is_some_and(|index| seen.spans[index].name == span)
            })
            .map(|event| event.message.clone())
            .collect()
    }

    fn seen(&self) -> MutexGuard<'_, Seen> {
        self.seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl CapturedSpan {
    /// The value of field `name`, as it would be displayed.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

impl<S> Layer<S> for Capture
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: LayerContext<'_, S>) {
        let mut span = CapturedSpan {
            name: attrs.metadata().name(),
            fields: BTreeMap::new(),
        };
        attrs.record(&mut Fields(&mut span.fields));
        let mut seen = self.seen();
        seen.spans.push(span);
        let index = seen.spans.len() - 1;
        seen.open.insert(id.clone(), index);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: LayerContext<'_, S>) {
        let mut seen = self.seen();
        if let Some(&index) = seen.open.get(id) {
            values.record(&mut Fields(&mut seen.spans[index].fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, context: LayerContext<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let span = context.event_span(event).map(|span| span.id());
        let mut seen = self.seen();
        let span = span.and_then(|id| seen.open.get(&id).copied());
        seen.events.push(CapturedEvent {
            message: fields.remove("message").unwrap_or_default(),
            span,
        });
    }

    fn on_close(&self, id: Id, _: LayerContext<'_, S>) {
        self.seen().open.remove(&id);
    }
}

/// Writes each field as text: strings as they are, everything else as `Debug` shows it (which
/// for `%value` fields is their `Display`).
struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}
