//! What is persisted, and where (`docs/design/state-format.md`, "Tenant and pipeline records").
//!
//! Under the registry's prefix `P` (default `varpulis-server`):
//! - `P:tenant:{tenant}`: a [`TenantRecord`];
//! - `P:pipeline:{tenant}:{pipeline}`: a [`PipelineRecord`];
//! - `P:log:{tenant}:{pipeline}:{seq}`: a [`LogEntry`], the acknowledged batches of one group
//!   commit (seq 20 digits);
//! - `P:idem:{tenant}:{pipeline}`: an [`IdempotencyRecord`], the remembered retry keys;
//! - `P:out:{tenant}:{pipeline}:{first seq}`: an [`OutputChunk`], retained output events;
//! - `P:cp:{tenant}:{pipeline}:...`: the pipeline's checkpoints ([`CheckpointManager`] layout).
//!
//! Every value is a checkpoint envelope (`varpulis_checkpoint::codec`) of its own blob kind,
//! with a record version inside, so a record can never be read as another.
//!
//! [`CheckpointManager`]: varpulis_checkpoint::CheckpointManager

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use varpulis_checkpoint::codec::{self, BlobKind};
use varpulis_core::Event;
use varpulis_store::{Key, StoreError};

use crate::error::TenantError;
use crate::ids::{KeyHash, PipelineId, TenantId};
use crate::quota::{Quota, QuotaTier};

/// Version of the records below.
pub(crate) const RECORD_VERSION: u32 = 1;

/// A tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TenantRecord {
    pub(crate) version: u32,
    pub(crate) id: TenantId,
    pub(crate) name: String,
    pub(crate) tier: Option<QuotaTier>,
    pub(crate) quota: Quota,
    pub(crate) key_hash: KeyHash,
    pub(crate) created_ms: i64,
    /// Events and outputs of pipelines since deleted (usage keeps counting them).
    pub(crate) retired_events_in: u64,
    pub(crate) retired_output_events: u64,
}

/// A pipeline. Its status is not stored: it is what compiling the source under the tenant's
/// quota gives at every start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PipelineRecord {
    pub(crate) version: u32,
    pub(crate) id: PipelineId,
    pub(crate) tenant: TenantId,
    pub(crate) name: String,
    pub(crate) source: String,
    pub(crate) created_ms: i64,
}

/// Version of [`LogEntry`]: 1 was one batch without an idempotency key, 2 one batch with
/// its key; 3 is a group of batches committed together.
pub(crate) const LOG_VERSION: u32 = 3;

/// One log entry: the batches of concurrent requests committed together by one write (group
/// commit), in the order they are applied.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LogEntry {
    pub(crate) version: u32,
    pub(crate) seq: u64,
    pub(crate) batches: Vec<LoggedBatch>,
}

/// One acknowledged request of a [`LogEntry`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LoggedBatch {
    pub(crate) events: Vec<Event>,
    /// The request's idempotency key, if it had one.
    pub(crate) idempotency: Option<IdempotencyStamp>,
}

/// A log entry of version 2 (one batch).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct LogEntryV2 {
    version: u32,
    seq: u64,
    events: Vec<Event>,
    idempotency: Option<IdempotencyStamp>,
}

/// A log entry of version 1 (one batch, no key).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct LogEntryV1 {
    version: u32,
    seq: u64,
    events: Vec<Event>,
}

impl LogEntry {
    /// Decodes an entry of any version: the version is the payload's first field.
    pub(crate) fn decode(key: &Key, blob: &[u8]) -> Result<Self, TenantError> {
        let corrupt = |reason: String| TenantError::Corrupt {
            key: key.to_string(),
            reason,
        };
        let payload = codec::open(BlobKind::IngestLog, blob).map_err(|e| corrupt(e.to_string()))?;
        let (version, _) = postcard::take_from_bytes::<u32>(payload)
            .map_err(|e| corrupt(format!("no log entry version: {e}")))?;
        match version {
            1 => {
                let v1: LogEntryV1 = decode(BlobKind::IngestLog, key, blob)?;
                Ok(Self::single(v1.version, v1.seq, v1.events, None))
            }
            2 => {
                let v2: LogEntryV2 = decode(BlobKind::IngestLog, key, blob)?;
                Ok(Self::single(v2.version, v2.seq, v2.events, v2.idempotency))
            }
            LOG_VERSION => decode(BlobKind::IngestLog, key, blob),
            v => Err(corrupt(format!(
                "log entry version {v} is newer than this build reads ({LOG_VERSION})"
            ))),
        }
    }

    fn single(
        version: u32,
        seq: u64,
        events: Vec<Event>,
        idempotency: Option<IdempotencyStamp>,
    ) -> Self {
        Self {
            version,
            seq,
            batches: vec![LoggedBatch {
                events,
                idempotency,
            }],
        }
    }
}

/// What identifies a request that may be retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IdempotencyStamp {
    /// The client's key.
    pub(crate) key: String,
    /// The request's fingerprint (SHA-256 of its bytes): the same key with another is refused.
    pub(crate) body_hash: [u8; 32],
    /// When it was first applied (ms since the epoch).
    pub(crate) at_ms: i64,
}

/// A remembered request: its stamp and its original answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Remembered {
    pub(crate) stamp: IdempotencyStamp,
    pub(crate) accepted: u64,
    pub(crate) outputs: Vec<Event>,
}

/// Output events produced between two checkpoints, with their sequence numbers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OutputChunk {
    pub(crate) version: u32,
    pub(crate) outputs: Vec<(u64, Event)>,
}

/// The idempotency window of a pipeline, written before each checkpoint commits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct IdempotencyRecord {
    pub(crate) version: u32,
    /// Oldest first.
    pub(crate) remembered: Vec<Remembered>,
}

pub(crate) fn encode<T: Serialize>(kind: BlobKind, value: &T) -> Result<Vec<u8>, TenantError> {
    codec::encode(kind, value).map_err(|e| TenantError::Corrupt {
        key: String::from("(new record)"),
        reason: e.to_string(),
    })
}

pub(crate) fn decode<T: DeserializeOwned>(
    kind: BlobKind,
    key: &Key,
    blob: &[u8],
) -> Result<T, TenantError> {
    codec::decode(kind, blob).map_err(|e| TenantError::Corrupt {
        key: key.to_string(),
        reason: e.to_string(),
    })
}

/// The keys of a registry.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    prefix: String,
}

impl Layout {
    pub(crate) fn new(prefix: &str) -> Result<Self, StoreError> {
        Key::new(prefix)?;
        Ok(Self {
            prefix: prefix.to_owned(),
        })
    }

    fn key(&self, rest: &str) -> Key {
        Key::new(format!("{}:{rest}", self.prefix))
            .expect("ids and fixed segments make valid keys under a valid prefix")
    }

    pub(crate) fn tenants(&self) -> Key {
        self.key("tenant")
    }

    pub(crate) fn tenant(&self, t: &TenantId) -> Key {
        self.key(&format!("tenant:{t}"))
    }

    pub(crate) fn pipelines(&self) -> Key {
        self.key("pipeline")
    }

    pub(crate) fn pipeline(&self, t: &TenantId, p: &PipelineId) -> Key {
        self.key(&format!("pipeline:{t}:{p}"))
    }

    pub(crate) fn log(&self, t: &TenantId, p: &PipelineId) -> Key {
        self.key(&format!("log:{t}:{p}"))
    }

    pub(crate) fn log_entry(&self, t: &TenantId, p: &PipelineId, seq: u64) -> Key {
        self.key(&format!("log:{t}:{p}:{seq:020}"))
    }

    /// The `key_prefix` of the pipeline's checkpoints.
    pub(crate) fn checkpoints(&self, t: &TenantId, p: &PipelineId) -> String {
        format!("{}:cp:{t}:{p}", self.prefix)
    }

    pub(crate) fn idempotency(&self, t: &TenantId, p: &PipelineId) -> Key {
        self.key(&format!("idem:{t}:{p}"))
    }

    pub(crate) fn outputs(&self, t: &TenantId, p: &PipelineId) -> Key {
        self.key(&format!("out:{t}:{p}"))
    }

    pub(crate) fn output_chunk(&self, t: &TenantId, p: &PipelineId, first: u64) -> Key {
        self.key(&format!("out:{t}:{p}:{first:020}"))
    }

    /// The roots under which pipelines keep their data (log, idempotency windows, outputs,
    /// checkpoints): `P:{root}:{tenant}:{pipeline}...`.
    pub(crate) fn data_roots(&self) -> [Key; 4] {
        [
            self.key("log"),
            self.key("idem"),
            self.key("out"),
            self.key("cp"),
        ]
    }

    /// The tenant and pipeline segments of a key under one of [`data_roots`](Self::data_roots).
    pub(crate) fn owner_of<'k>(&self, key: &'k Key) -> Option<(&'k str, &'k str)> {
        let skip = self.prefix.split(varpulis_store::SEPARATOR).count() + 1;
        let mut segments = key.segments().skip(skip);
        Some((segments.next()?, segments.next()?))
    }

    /// Every key prefix of a pipeline's data (log, idempotency window, outputs, checkpoints).
    pub(crate) fn pipeline_data(&self, t: &TenantId, p: &PipelineId) -> [Key; 4] {
        [
            self.log(t, p),
            self.idempotency(t, p),
            self.outputs(t, p),
            self.key(&format!("cp:{t}:{p}")),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key::new("varpulis-server:log:t:p:00000000000000000007").expect("key")
    }

    fn stamp() -> IdempotencyStamp {
        IdempotencyStamp {
            key: String::from("k"),
            body_hash: [7; 32],
            at_ms: 5,
        }
    }

    #[test]
    fn log_entries_of_every_version_decode_as_groups() {
        let events = vec![Event::new("Txn", 1).with_field("amount", 3)];
        let v1 = codec::encode(
            BlobKind::IngestLog,
            &LogEntryV1 {
                version: 1,
                seq: 7,
                events: events.clone(),
            },
        )
        .expect("v1");
        let v2 = codec::encode(
            BlobKind::IngestLog,
            &LogEntryV2 {
                version: 2,
                seq: 7,
                events: events.clone(),
                idempotency: Some(stamp()),
            },
        )
        .expect("v2");
        let v3 = encode(
            BlobKind::IngestLog,
            &LogEntry {
                version: LOG_VERSION,
                seq: 7,
                batches: vec![
                    LoggedBatch {
                        events: events.clone(),
                        idempotency: None,
                    },
                    LoggedBatch {
                        events: events.clone(),
                        idempotency: Some(stamp()),
                    },
                ],
            },
        )
        .expect("v3");
        let one = LogEntry::decode(&key(), &v1).expect("v1 decodes");
        assert_eq!((one.seq, one.batches.len()), (7, 1));
        assert_eq!(one.batches[0].events, events);
        assert_eq!(one.batches[0].idempotency, None);
        let two = LogEntry::decode(&key(), &v2).expect("v2 decodes");
        assert_eq!(two.batches.len(), 1);
        assert_eq!(two.batches[0].idempotency, Some(stamp()));
        let three = LogEntry::decode(&key(), &v3).expect("v3 decodes");
        assert_eq!(three.batches.len(), 2);
        assert_eq!(three.batches[1].idempotency, Some(stamp()));
    }

    #[test]
    fn a_log_entry_of_a_newer_version_is_refused_by_name() {
        let v9 = codec::encode(
            BlobKind::IngestLog,
            &LogEntryV1 {
                version: 9,
                seq: 7,
                events: Vec::new(),
            },
        )
        .expect("v9");
        let err = LogEntry::decode(&key(), &v9).expect_err("newer");
        let text = err.to_string();
        assert!(
            text.contains("00000000000000000007") && text.contains("version 9"),
            "{text}"
        );
    }
}
