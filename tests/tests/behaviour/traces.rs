//! Traces: scheduling is traced in a `docket.schedule` span.

use docket::Docket;
use tests::probe::Probe;

use super::tasks::NoteRun;
use tests::capture::Capture;

pub(crate) async fn scheduling_on_a_queue_is_traced_as_via_docket(docket: Docket) {
    let probe = Probe::new();
    let capture = Capture::new();
    let scheduled = {
        // Scheduling runs on this thread, so a thread-local subscriber sees all of it.
        let _guard = tracing::subscriber::set_default(capture.subscriber());
        NoteRun::schedule(probe.id(), "traced".into())
            .on(&docket)
            .await
            .unwrap()
    };

    let spans = capture.spans("docket.schedule");
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert_eq!(spans[0].field("task"), Some("note_run"));
    assert_eq!(spans[0].field("key"), Some(scheduled.key()));
    assert_eq!(spans[0].field("placement"), Some("queue"));
    let messages = capture.messages_in("docket.schedule");
    assert!(
        messages
            .iter()
            .any(|m| m == "scheduled note_run via docket"),
        "{messages:#?}"
    );
}
