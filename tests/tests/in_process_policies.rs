//! The policies of the behaviour suite in in-process mode: dockets with no queue, whose own
//! worker runs their tasks on the test's runtime.

#[allow(dead_code, reason = "this binary runs the suite's policies only")]
mod behaviour;

/// A fresh in-process docket.
async fn open() -> docket::Docket {
    docket::Docket::in_process()
}

behaviour::policies_suite!(open);
