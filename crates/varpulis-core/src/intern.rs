//! Interned names: one shared `Arc<str>` per distinct string, for readers that see the same
//! event types, field names and short values on every line.

use std::collections::HashSet;
use std::sync::Arc;

/// A bounded set of shared strings: [`Interner::intern`] returns the same `Arc<str>` for the
/// same text, so a reader that interns each event's type and field names pays a reference
/// count increment per name instead of an allocation.
///
/// Bounded two ways, so untrusted input cannot grow it without limit: a string longer than
/// `max_len` bytes is never stored (it is returned as a fresh `Arc`), and when `max_entries`
/// strings are stored the set is emptied before the next one goes in (strings already handed
/// out stay valid; they are only no longer shared with later ones). Hashing is keyed with a
/// random seed per interner (`foldhash`), so chosen names cannot force collisions at will.
///
/// Interning is invisible in values: two `Arc<str>` compare, hash and serialize by their text.
///
/// ```
/// use std::sync::Arc;
/// use varpulis_core::Interner;
///
/// let mut names = Interner::new(1024, 64);
/// let a = names.intern("zone");
/// let b = names.intern("zone");
/// assert!(Arc::ptr_eq(&a, &b));
/// assert_eq!(&*a, "zone");
/// ```
#[derive(Debug, Clone)]
pub struct Interner {
    set: HashSet<Arc<str>, foldhash::fast::RandomState>,
    max_entries: usize,
    max_len: usize,
    /// For [`Interner::adaptive`]: the hit rate of the current window.
    adaptive: Option<HitRate>,
}

/// Lookups and hits of the current window; while `paused`, `intern` does not look up at all.
#[derive(Debug, Clone, Copy, Default)]
struct HitRate {
    lookups: u32,
    hits: u32,
    paused: u32,
}

/// An adaptive interner judges its hit rate every this many lookups...
const WINDOW: u32 = 1024;
/// ... and below two hits in three stops looking up for this many strings, then tries again.
const PAUSE: u32 = 64 * WINDOW;

impl Interner {
    /// An empty interner that stores at most `max_entries` strings of at most `max_len` bytes.
    #[must_use]
    pub fn new(max_entries: usize, max_len: usize) -> Self {
        Self {
            set: HashSet::with_hasher(foldhash::fast::RandomState::default()),
            max_entries: max_entries.max(1),
            max_len,
            adaptive: None,
        }
    }

    /// Like [`Interner::new`], for strings that may or may not repeat (string values rather
    /// than names): while fewer than two lookups in three find their string, interning costs
    /// more than it saves (a lookup and an insertion instead of one allocation), so the
    /// interner then stops storing and looking up, and hands out fresh strings, for the next
    /// 65,536 strings, and measures again after that.
    #[must_use]
    pub fn adaptive(max_entries: usize, max_len: usize) -> Self {
        Self {
            adaptive: Some(HitRate::default()),
            ..Self::new(max_entries, max_len)
        }
    }

    /// The shared string equal to `s`, stored on first sight (within the bounds above).
    pub fn intern(&mut self, s: &str) -> Arc<str> {
        if s.len() > self.max_len {
            return Arc::from(s);
        }
        if let Some(rate) = &mut self.adaptive {
            if rate.paused > 0 {
                rate.paused -= 1;
                return Arc::from(s);
            }
            rate.lookups += 1;
            if rate.lookups == WINDOW {
                let poor = rate.hits * 3 < rate.lookups * 2;
                rate.lookups = 0;
                rate.hits = 0;
                if poor {
                    rate.paused = PAUSE;
                    self.set.clear();
                    return Arc::from(s);
                }
            }
        }
        if let Some(shared) = self.set.get(s) {
            if let Some(rate) = &mut self.adaptive {
                rate.hits += 1;
            }
            return Arc::clone(shared);
        }
        if self.set.len() >= self.max_entries {
            self.set.clear();
        }
        let shared: Arc<str> = Arc::from(s);
        self.set.insert(Arc::clone(&shared));
        shared
    }

    /// The stored string equal to `s`, if there is one (never stores).
    #[must_use]
    pub fn get(&self, s: &str) -> Option<&Arc<str>> {
        self.set.get(s)
    }

    /// How many strings are stored.
    #[must_use]
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether no string is stored.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_text_is_the_same_allocation() {
        let mut i = Interner::new(8, 16);
        let a = i.intern("SensorEvent");
        assert!(Arc::ptr_eq(&a, &i.intern("SensorEvent")));
        assert!(!Arc::ptr_eq(&a, &i.intern("Other")));
        assert_eq!(i.len(), 2);
        assert!(i.get("Other").is_some() && i.get("none").is_none());
    }

    #[test]
    fn long_strings_are_not_stored() {
        let mut i = Interner::new(8, 4);
        let a = i.intern("longer");
        let b = i.intern("longer");
        assert_eq!(a, b);
        assert!(!Arc::ptr_eq(&a, &b));
        assert!(i.is_empty());
    }

    #[test]
    fn an_adaptive_interner_pauses_on_unique_strings_and_keeps_sharing_repeated_ones() {
        let mut repeated = Interner::adaptive(64, 16);
        for n in 0..10 * WINDOW {
            repeated.intern(&format!("z{}", n % 10));
        }
        let a = repeated.intern("z1");
        assert!(Arc::ptr_eq(&a, &repeated.intern("z1")), "still sharing");

        let mut unique = Interner::adaptive(64, 16);
        for n in 0..WINDOW {
            unique.intern(&format!("u{n}"));
        }
        assert!(
            unique.is_empty(),
            "paused and emptied after a window of misses"
        );
        let b = unique.intern("same");
        assert!(!Arc::ptr_eq(&b, &unique.intern("same")));
        assert_eq!(b, unique.intern("same"), "fresh strings, same text");
        // After the pause it measures again, and a repeating input is shared again.
        for _ in 0..PAUSE {
            unique.intern("x");
        }
        for _ in 0..WINDOW {
            unique.intern("y");
        }
        let c = unique.intern("y");
        assert!(Arc::ptr_eq(&c, &unique.intern("y")));
    }

    #[test]
    fn a_full_interner_starts_over_and_what_it_handed_out_stays_valid() {
        let mut i = Interner::new(3, 16);
        let kept: Vec<Arc<str>> = (0..10).map(|n| i.intern(&format!("n{n}"))).collect();
        assert!(i.len() <= 3);
        for (n, s) in kept.iter().enumerate() {
            assert_eq!(&**s, format!("n{n}"));
        }
    }
}
