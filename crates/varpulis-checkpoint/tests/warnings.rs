//! The warning recovery logs when it skips a checkpoint. A test binary of its own: `tracing`
//! keeps process-wide state (call-site interest, the maximum level) that tests running on other
//! threads of the same process can change under a thread-local subscriber.

use std::sync::{Arc, Mutex};

use varpulis_checkpoint::{Checkpoint, CheckpointConfig, CheckpointManager, EngineCheckpoint};
use varpulis_store::{Key, MemoryStore, StateStore};

/// A minimal `tracing` subscriber that records the messages of warning events.
struct Capture(Arc<Mutex<Vec<String>>>);

struct Message<'a>(&'a mut String);

impl tracing::field::Visit for Message<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.push_str(&format!("{value:?}"));
        }
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if *event.metadata().level() == tracing::Level::WARN {
            let mut message = String::new();
            event.record(&mut Message(&mut message));
            self.0.lock().unwrap().push(message);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn skipping_a_corrupt_checkpoint_logs_a_warning_naming_it() {
    let messages = Arc::new(Mutex::new(Vec::new()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(Capture(messages.clone()), || {
        runtime.block_on(async {
            let store = MemoryStore::new();
            let manager =
                CheckpointManager::new(store.clone(), CheckpointConfig::default()).unwrap();
            for seed in 1..=2_u64 {
                let engine = EngineCheckpoint {
                    events_processed: seed,
                    ..EngineCheckpoint::default()
                };
                let cp = Checkpoint::new(1_000 * seed as i64).with_context("main", engine);
                manager.checkpoint(&cp).await.unwrap();
            }
            // Truncate the newest manifest: recovery falls back to checkpoint 1, with a warning.
            let manifest = Key::new(format!("varpulis:ckpt:manifest:{:020}", 2)).unwrap();
            let bytes = store.get(&manifest).await.unwrap().unwrap();
            store.put(&manifest, &bytes[..10]).await.unwrap();
            let recovery = manager.recover().await.unwrap();
            assert_eq!(recovery.checkpoint.unwrap().id, 1);
        });
    });
    let messages = messages.lock().unwrap();
    let manifest = format!("varpulis:ckpt:manifest:{:020}", 2);
    assert!(
        messages
            .iter()
            .any(|m| m.contains("skipping invalid checkpoint 2") && m.contains(&manifest)),
        "{messages:?}"
    );
}
