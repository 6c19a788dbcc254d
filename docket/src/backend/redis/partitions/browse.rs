//! The dashboard's reads over every partition of a spread docket.

use super::Partitions;
use crate::backend::browse::{Counts, Filter, Page, Place, TaskView};
use crate::error::Result;
use crate::inspect::{DeadLetter, TaskInfo};

/// The dashboard's reads over every partition.
impl Partitions {
    pub(crate) async fn counts(&self) -> Result<Counts> {
        let parts = self.parts().await?;
        let all =
            futures_util::future::try_join_all(parts.iter().map(|part| part.counts())).await?;
        let mut total = all[0].clone();
        for counts in &all[1..] {
            total.taken = total.taken.min(counts.taken);
            total.queued += counts.queued;
            total.scheduled += counts.scheduled;
            total.running += counts.running;
            total.held += counts.held;
            total.dead += counts.dead;
        }
        Ok(total)
    }

    /// A page of `place`, partition after partition; the cursor names the partition
    /// (`<partition>/<cursor within it>`).
    pub(crate) async fn page(
        &self,
        place: Place,
        filter: &Filter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<TaskInfo>> {
        let parts = self.parts().await?;
        if parts.len() == 1 {
            return self.home.page(place, filter, after, limit).await;
        }
        spread_page(parts.len(), after, limit, |part, inner, room| {
            Box::pin(async move {
                parts[part]
                    .page(place, filter, inner.as_deref(), room)
                    .await
            })
        })
        .await
    }

    /// A page of dead letters, partition after partition (newest first within each).
    pub(crate) async fn dead_page(
        &self,
        filter: &Filter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<DeadLetter>> {
        let parts = self.parts().await?;
        if parts.len() == 1 {
            return self.home.dead_page(filter, after, limit).await;
        }
        spread_page(parts.len(), after, limit, |part, inner, room| {
            Box::pin(async move { parts[part].dead_page(filter, inner.as_deref(), room).await })
        })
        .await
    }

    pub(crate) async fn task_view(&self, key: &str) -> Result<TaskView> {
        let mut view = TaskView::default();
        for part in Self::lookups(self.parts().await?, key) {
            let found = part.task_view(key).await?;
            if !found.is_unknown() {
                view = found;
                if view.message.is_some() || view.dead.is_some() {
                    break;
                }
            }
        }
        Ok(view)
    }
}

/// Up to `limit` items from partition after partition, from the cursor `after`
/// (`<partition>/<cursor within it>`): `fetch(partition, cursor, room)` reads one partition's
/// page.
async fn spread_page<'a, T>(
    count: usize,
    after: Option<&str>,
    limit: usize,
    fetch: impl Fn(usize, Option<String>, usize) -> futures_util::future::BoxFuture<'a, Result<Page<T>>>,
) -> Result<Page<T>> {
    let (mut part, mut inner) = spread_cursor(after);
    let mut items = Vec::new();
    while part < count {
        let room = limit.saturating_sub(items.len());
        if room == 0 {
            return Ok(Page {
                items,
                next: Some(format!("{part}/{}", inner.unwrap_or_default())),
            });
        }
        let page = fetch(part, inner.take(), room).await?;
        items.extend(page.items);
        if let Some(next) = page.next {
            return Ok(Page {
                items,
                next: Some(format!("{part}/{next}")),
            });
        }
        part += 1;
        if items.len() >= limit && part < count {
            return Ok(Page {
                items,
                next: Some(format!("{part}/")),
            });
        }
    }
    Ok(Page { items, next: None })
}

/// A spread page cursor: the partition, and the cursor within it (none: from its start).
fn spread_cursor(after: Option<&str>) -> (usize, Option<String>) {
    let Some(after) = after else {
        return (0, None);
    };
    match after.split_once('/') {
        Some((part, inner)) => (
            part.parse().unwrap_or(usize::MAX),
            Some(inner.to_owned()).filter(|inner| !inner.is_empty()),
        ),
        None => (0, Some(after.to_owned())),
    }
}
