//! The events an operator holds until the watermark passes them, ordered by (event time,
//! arrival number).
//!
//! Input usually comes in time order: such events are appended to a queue (no tree node per
//! event); an event older than the queue's newest goes to a tree. The first held event is the
//! smaller of the queue's front and the tree's first, so the order is exactly that of one
//! sorted map.

use std::collections::{BTreeMap, VecDeque};

use varpulis_core::EventTime;

/// A held item's key: its event time and arrival number (unique).
pub(crate) type HeldKey = (EventTime, u64);

#[derive(Debug, Clone)]
pub(crate) struct Held<T> {
    /// Keys increasing from front to back.
    queue: VecDeque<(HeldKey, T)>,
    tree: BTreeMap<HeldKey, T>,
}

impl<T> Default for Held<T> {
    fn default() -> Self {
        Self {
            queue: VecDeque::new(),
            tree: BTreeMap::new(),
        }
    }
}

impl<T> Held<T> {
    pub(crate) fn insert(&mut self, key: HeldKey, value: T) {
        if self.queue.back().is_none_or(|(k, _)| *k < key) {
            self.queue.push_back((key, value));
        } else {
            self.tree.insert(key, value);
        }
    }

    /// The smallest key.
    pub(crate) fn first_key(&self) -> Option<HeldKey> {
        let q = self.queue.front().map(|(k, _)| *k);
        let t = self.tree.first_key_value().map(|(k, _)| *k);
        match (q, t) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Removes the item with the smallest key.
    pub(crate) fn pop_first(&mut self) -> Option<(HeldKey, T)> {
        let from_queue = match (self.queue.front(), self.tree.first_key_value()) {
            (Some((a, _)), Some((b, _))) => a < b,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if from_queue {
            self.queue.pop_front()
        } else {
            self.tree.pop_first()
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len() + self.tree.len()
    }

    /// Every item, in key order.
    pub(crate) fn sorted(&self) -> Vec<(HeldKey, &T)> {
        let mut out: Vec<(HeldKey, &T)> = self
            .queue
            .iter()
            .map(|(k, v)| (*k, v))
            .chain(self.tree.iter().map(|(k, v)| (*k, v)))
            .collect();
        out.sort_unstable_by_key(|(k, _)| *k);
        out
    }

    /// Every item, in no particular order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &T> {
        self.queue.iter().map(|(_, v)| v).chain(self.tree.values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_key_order_whatever_the_insertion_order() {
        let mut h = Held::default();
        let keys = [(5, 0), (7, 1), (3, 2), (7, 3), (6, 4), (1, 5), (9, 6)];
        for (i, k) in keys.iter().enumerate() {
            h.insert(*k, i);
        }
        let mut sorted = keys.to_vec();
        sorted.sort_unstable();
        assert_eq!(
            h.sorted().iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            sorted
        );
        assert_eq!(h.first_key(), Some((1, 5)));
        let mut popped = Vec::new();
        while let Some((k, _)) = h.pop_first() {
            popped.push(k);
        }
        assert_eq!(popped, sorted);
        assert_eq!(h.len(), 0);
    }
}
