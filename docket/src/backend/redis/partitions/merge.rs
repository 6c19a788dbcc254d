//! Many feeds as one: the signals of every partition, a key's record changes from two.

use std::task::Poll;

use tokio::sync::mpsc;

/// Forward the items of `receivers` that `keep` lets through (given the receiver's index) into
/// `sender`, until one of them ends or `sender` is dropped. When one ends, what the others had
/// already passed on is forwarded before the merged feed ends too: a signal feed moves its
/// resume position past a signal once it passed it on, so a signal dropped here would never be
/// read again.
pub(super) async fn merge<T>(
    mut receivers: Vec<mpsc::UnboundedReceiver<T>>,
    sender: mpsc::UnboundedSender<T>,
    keep: impl Fn(usize, &T) -> bool,
) {
    loop {
        let next = std::future::poll_fn(|context| {
            for (index, receiver) in receivers.iter_mut().enumerate() {
                if let Poll::Ready(item) = receiver.poll_recv(context) {
                    return Poll::Ready((index, item));
                }
            }
            Poll::Pending
        });
        let (index, item) = tokio::select! {
            () = sender.closed() => return,
            next = next => next,
        };
        match item {
            Some(item) => {
                if keep(index, &item) && sender.send(item).is_err() {
                    return;
                }
            }
            None => {
                for (index, receiver) in receivers.iter_mut().enumerate() {
                    // Nothing more is passed on from here: what is buffered is all there is.
                    receiver.close();
                    while let Ok(item) = receiver.try_recv() {
                        if keep(index, &item) && sender.send(item).is_err() {
                            return;
                        }
                    }
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn what_the_other_feeds_passed_on_is_forwarded_when_one_ends() {
        let (first, first_receiver) = mpsc::unbounded_channel();
        let (second, second_receiver) = mpsc::unbounded_channel();
        let (sender, mut merged) = mpsc::unbounded_channel();
        second.send(7).unwrap();
        second.send(8).unwrap();
        drop(first);
        merge(vec![first_receiver, second_receiver], sender, |_, _| true).await;
        let mut got = Vec::new();
        while let Ok(item) = merged.try_recv() {
            got.push(item);
        }
        assert_eq!(got, [7, 8]);
        // Closed: the feed that passed them on learns that nothing more is taken.
        assert!(second.send(9).is_err());
    }

    #[tokio::test]
    async fn items_are_kept_or_dropped_by_their_feed() {
        let (first, first_receiver) = mpsc::unbounded_channel();
        let (second, second_receiver) = mpsc::unbounded_channel();
        let (sender, mut merged) = mpsc::unbounded_channel();
        first.send(1).unwrap();
        second.send(2).unwrap();
        second.send(3).unwrap();
        let task = tokio::spawn(merge(
            vec![first_receiver, second_receiver],
            sender,
            |index, item| index == 0 || *item != 2,
        ));
        let mut got = vec![merged.recv().await.unwrap(), merged.recv().await.unwrap()];
        got.sort_unstable();
        assert_eq!(got, [1, 3]);
        drop(merged);
        first.send(4).unwrap();
        task.await.unwrap();
    }
}
