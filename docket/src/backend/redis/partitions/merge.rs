//! Many feeds as one: the signals of every partition, a key's record changes from two.

use tokio::sync::mpsc;

/// Forward every item of `receivers` into `sender` until one of them ends or `sender` is
/// dropped.
pub(super) async fn merge<T: Send + 'static>(
    receivers: Vec<mpsc::UnboundedReceiver<T>>,
    sender: mpsc::UnboundedSender<T>,
) {
    let mut streams = futures_util::stream::select_all(
        receivers
            .into_iter()
            .map(|receiver| Box::pin(ended(receiver))),
    );
    use futures_util::StreamExt;
    loop {
        let item = tokio::select! {
            () = sender.closed() => return,
            item = streams.next() => item,
        };
        match item {
            Some(Some(item)) => {
                if sender.send(item).is_err() {
                    return;
                }
            }
            // One feed ended: so does the merged one.
            Some(None) | None => return,
        }
    }
}

/// A receiver's items, then one `None` when it ends.
fn ended<T>(receiver: mpsc::UnboundedReceiver<T>) -> impl futures_util::Stream<Item = Option<T>> {
    use futures_util::StreamExt;
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    })
    .map(Some)
    .chain(futures_util::stream::once(async { None }))
}
