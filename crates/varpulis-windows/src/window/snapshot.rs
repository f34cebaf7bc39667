//! Snapshot and restore: the operator's state to and from the `varpulis-state` types
//! ([`WindowCheckpoint`] and the [`WindowSpecState`] it was taken under). Field order here is
//! not persisted; the types' is (`docs/design/state-format.md`).

use std::cmp::Reverse;
use std::collections::{HashMap, VecDeque};

use varpulis_core::{Value, format_duration_ms};
use varpulis_state::{PaneState, PartitionState, WindowCheckpoint, WindowSpecState};

use super::assign::{Mode, next_close};
use super::pane::{Pane, Partition};
use super::{KeyHasher, WindowOperator, WindowSpec};
use crate::WindowError;
use crate::agg::{Acc, Aggregate};
use crate::running::Running;

impl WindowSpec {
    /// The definition as recorded in checkpoints.
    #[must_use]
    pub fn state(&self) -> WindowSpecState {
        WindowSpecState {
            kind: self.kind,
            partition_by: self.partition_by.as_deref().map(str::to_owned),
            aggregates: self.aggregates.iter().map(Aggregate::signature).collect(),
            allowed_lateness_ms: self.allowed_lateness_ms,
        }
    }
}

fn describe(s: &WindowSpecState) -> String {
    let d = |ms: i64| format_duration_ms(ms);
    let kind = s.kind;
    let part = s
        .partition_by
        .as_ref()
        .map(|p| format!(" partition_by {p}"))
        .unwrap_or_default();
    format!(
        "{kind}{part} [{}] lateness {}",
        s.aggregates.join(", "),
        d(s.allowed_lateness_ms)
    )
}

impl WindowOperator {
    /// The operator's state, in checkpoint form (partitions sorted by key).
    #[must_use]
    pub fn snapshot(&self) -> WindowCheckpoint {
        let mut cp = self.snapshot_unsorted();
        cp.sort_partitions();
        cp
    }

    /// [`snapshot`](Self::snapshot) without its sort: the partitions in the operator's own
    /// order, until [`WindowCheckpoint::sort_partitions`] (the sort of many partitions by key
    /// costs more than copying them, so a caller that must return fast sorts later, elsewhere).
    #[must_use]
    pub fn snapshot_unsorted(&self) -> WindowCheckpoint {
        let partitions: Vec<PartitionState> = self
            .partitions
            .iter()
            .map(|(k, p)| PartitionState {
                key: k.clone(),
                panes: p
                    .panes
                    .iter()
                    .map(|pane| PaneState {
                        start_ms: pane.start,
                        end_ms: pane.end,
                        count: pane.count,
                        accumulators: pane.accs.iter().map(Acc::to_state).collect(),
                    })
                    .collect(),
                events: Vec::new(),
            })
            .collect();
        WindowCheckpoint {
            spec: self.spec_state.clone(),
            partitions,
            late_events_dropped: self.late,
            watermark_ms: self.watermark,
            next_seq: self.next_seq,
        }
    }

    /// Replaces the operator's state with a checkpoint's.
    ///
    /// # Errors
    /// [`WindowError::IncompatibleState`] when the checkpoint was taken under another definition
    /// (kind, sizes, partitioning, aggregates, lateness); [`WindowError::CorruptState`] when its
    /// contents are impossible for this definition. On error the operator is unchanged.
    pub fn restore(&mut self, cp: &WindowCheckpoint) -> Result<(), WindowError> {
        if cp.spec != self.spec_state {
            return Err(WindowError::IncompatibleState {
                expected: describe(&self.spec_state),
                found: describe(&cp.spec),
            });
        }
        let mut partitions =
            HashMap::with_capacity_and_hasher(cp.partitions.len(), KeyHasher::default());
        for ps in &cp.partitions {
            let part = self.restored_partition(ps)?;
            if partitions.insert(ps.key.clone(), part).is_some() {
                return corrupt(format!("partition {} appears twice", ps.key));
            }
        }
        self.partitions = partitions;
        self.watermark = cp.watermark_ms;
        self.late = cp.late_events_dropped;
        self.next_seq = cp.next_seq;
        self.timers.clear();
        self.flushing = None;
        self.rearm_timers();
        Ok(())
    }

    /// One checkpointed partition, validated against this definition.
    fn restored_partition(&self, ps: &PartitionState) -> Result<Partition, WindowError> {
        if ps.panes.is_empty() || !ps.events.is_empty() {
            return corrupt(format!("partition {} has no panes or raw events", ps.key));
        }
        let mut panes = VecDeque::with_capacity(ps.panes.len());
        for p in &ps.panes {
            let pane = self.restored_pane(ps, p, panes.back())?;
            panes.push_back(pane);
        }
        Ok(Partition {
            panes,
            timer: None,
            next_start: None,
            run: self
                .running
                .then(|| Box::new(Running::new(&self.spec.aggregates))),
        })
    }

    /// One checkpointed pane of `ps`, validated against this definition and the pane before it
    /// (`prev`: panes are sorted by start, without duplicates).
    fn restored_pane(
        &self,
        ps: &PartitionState,
        p: &PaneState,
        prev: Option<&Pane>,
    ) -> Result<Pane, WindowError> {
        let aggs = &self.spec.aggregates;
        let bad_pane = || corrupt(format!("pane at {} in partition {}", p.start_ms, ps.key));
        if p.accumulators.len() != aggs.len() || p.count == 0 {
            return bad_pane();
        }
        if !self.pane_fits(ps, p) || prev.is_some_and(|b| b.start >= p.start_ms) {
            return bad_pane();
        }
        let accs = aggs
            .iter()
            .zip(&p.accumulators)
            .map(|(a, s)| Acc::from_state(a.func, s))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Pane {
            start: p.start_ms,
            end: p.end_ms,
            count: p.count,
            accs,
            fold: Vec::new(),
        })
    }

    /// Whether pane `p` of `ps` is one this operator could have built: slice-aligned (time
    /// windows), ordered bounds (sessions), a single part-filled window (count windows), and
    /// within the accepted times (a union of whole slices).
    fn pane_fits(&self, ps: &PartitionState, p: &PaneState) -> bool {
        let ok = match self.mode {
            Mode::Sliced { slice, .. } => {
                p.start_ms.rem_euclid(slice) == 0 && p.start_ms.checked_add(slice) == Some(p.end_ms)
            }
            Mode::Session { .. } => p.start_ms <= p.end_ms,
            Mode::Count { n } => p.count < n && ps.panes.len() == 1,
        };
        // Accepted times only (the accepted range is a union of whole slices).
        let accepted = |t: i64| self.lo <= t && t <= self.hi;
        ok && match self.mode {
            Mode::Sliced { .. } => accepted(p.start_ms),
            Mode::Session { .. } | Mode::Count { .. } => accepted(p.start_ms) && accepted(p.end_ms),
        }
    }

    /// Arms one timer per restored partition, at its next window's close time.
    fn rearm_timers(&mut self) {
        let keys: Vec<Value> = self.partitions.keys().cloned().collect();
        for key in keys {
            let t = next_close(
                self.mode,
                self.lateness,
                &self.partitions[&key],
                self.watermark,
            );
            if let Some(t) = t {
                self.partitions.get_mut(&key).expect("key exists").timer = Some(t);
                self.timers.push(Reverse((t, key)));
            }
        }
    }
}

fn corrupt<T>(reason: String) -> Result<T, WindowError> {
    Err(WindowError::CorruptState { reason })
}
