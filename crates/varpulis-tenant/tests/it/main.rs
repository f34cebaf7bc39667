//! The tenant registry over real stores, on a manual clock.

mod group_commit;
mod idempotency;
mod keys;
mod outputs;
mod prometheus;
mod quotas;
mod restart;
mod restore;
mod status;

use std::sync::Arc;
use std::time::Duration;

use varpulis_core::{Event, Value};
use varpulis_engine::clock::{Clock, ManualClock};
use varpulis_store::{MemoryStore, StateStore};
use varpulis_tenant::{Registry, RegistryConfig};

pub(crate) const COUNT: &str =
    "stream Totals = Txn .window(5) .aggregate(sum: sum(amount), n: count())";
pub(crate) const SESSION: &str = "stream Sessions = Click .partition_by(user) .window(session: 10s) .aggregate(n: count(), sum: sum(amount))";

pub(crate) fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(1_700_000_000_000))
}

pub(crate) fn memory() -> Arc<dyn StateStore> {
    Arc::new(MemoryStore::new())
}

pub(crate) async fn open(store: &Arc<dyn StateStore>, clock: &Arc<ManualClock>) -> Registry {
    let clock: Arc<dyn Clock> = Arc::clone(clock) as Arc<dyn Clock>;
    Registry::open(Arc::clone(store), RegistryConfig::default(), clock)
        .await
        .expect("the registry opens")
}

pub(crate) fn txn(ts: i64, amount: i64) -> Event {
    Event::new("Txn", ts).with_field("amount", amount)
}

pub(crate) fn click(ts: i64, amount: i64) -> Event {
    Event::new("Click", ts)
        .with_field("user", "ann")
        .with_field("amount", amount)
}

pub(crate) fn field(e: &Event, name: &str) -> Value {
    e.get(name).cloned().unwrap_or(Value::Null)
}

pub(crate) fn second() -> Duration {
    Duration::from_secs(1)
}
