//! The writer's end of the change-stream feed.

use std::collections::VecDeque;

use crate::history::History;
use crate::stream::FeedItem;
use crate::sync::{broadcast, lock, Mutex};
use crate::writer::retired::{Item, Retired};
use crate::Version;

/// Broadcasts each published group's commits to change streams.
///
/// The broadcast ring keeps the last `capacity` groups for slow streams
/// and drops the oldest when it sends a new one, inside `send`, under the
/// channel's lock. If that drop were the last reference to a value, the
/// value's `Drop` (user code) would run there. So the writer keeps its own
/// copy of every group the ring may still hold (`shadow`): the ring's
/// drop is then never the last, and the group leaves the shadow through
/// the writer's [`Retired`] bin, after the replies.
pub(crate) struct Feed<V> {
    sender: broadcast::Sender<FeedItem<V>>,
    shadow: VecDeque<FeedItem<V>>,
    /// How many groups the ring holds (tokio rounds the capacity up to a
    /// power of two).
    ring: usize,
}

impl<V> Feed<V> {
    pub(crate) fn new(sender: broadcast::Sender<FeedItem<V>>, capacity: usize) -> Self {
        Self {
            sender,
            shadow: VecDeque::new(),
            ring: capacity.next_power_of_two(),
        }
    }

    /// Send the commits after `after` up to `upto`, if anyone streams.
    ///
    /// Call after the snapshot of `upto` is stored. Why no stream misses a
    /// group: a stream subscribes (under the channel's tail lock), *then*
    /// loads the published version and reads its backlog from the history
    /// up to it. `receiver_count` takes the same tail lock. If our count
    /// came before the stream's subscribe, our store (before the count)
    /// happens-before the stream's load, which then sees `upto` and finds
    /// the group in its backlog; otherwise the count includes the stream,
    /// and the group is sent to it. Repeats are skipped by version.
    pub(crate) fn send(
        &mut self,
        history: &Mutex<History<V>>,
        after: Version,
        upto: Version,
        retired: &mut Retired<V>,
    ) {
        if after >= upto || self.sender.receiver_count() == 0 {
            return;
        }
        let group: FeedItem<V> = lock(history).views_between(after, upto).into();
        self.shadow.push_back(FeedItem::clone(&group));
        while self.shadow.len() > self.ring {
            let oldest = self.shadow.pop_front().expect("longer than the ring");
            retired.push(Item::Feed(oldest));
        }
        // Every receiver may be gone since the count: then the group comes
        // back, and the shadow still holds its twin.
        if let Err(broadcast::error::SendError(group)) = self.sender.send(group) {
            retired.push(Item::Feed(group));
        }
    }
}
