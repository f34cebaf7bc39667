//! The admin side of tenants: the operator's key, tenant keys and authentication, creating,
//! listing and deleting tenants, and their usage.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{DEFAULT_TENANT, Registry, Tenant, TenantInfo, check_name};
use crate::error::TenantError;
use crate::ids::{ApiKey, KeyHash, TenantId};
use crate::quota::{Quota, QuotaTier, Usage};
use crate::record::{RECORD_VERSION, TenantRecord};

impl Registry {
    /// Sets the admin key (kept as a hash, in memory only).
    pub fn set_admin_key(&self, key: &str) {
        *self.admin.write().expect("not poisoned") = Some(KeyHash::of(key));
    }

    /// Whether an admin key is set.
    #[must_use]
    pub fn has_admin_key(&self) -> bool {
        self.admin.read().expect("not poisoned").is_some()
    }

    /// Whether `key` is the admin key (`false` when none is set).
    #[must_use]
    pub fn is_admin(&self, key: &str) -> bool {
        let wanted = KeyHash::of(key);
        self.admin
            .read()
            .expect("not poisoned")
            .as_ref()
            .is_some_and(|h| h.ct_eq(&wanted))
    }

    /// The tenant whose key is `key`.
    #[must_use]
    pub fn authenticate(&self, key: &str) -> Option<TenantId> {
        let hash = KeyHash::of(key);
        let id = self
            .keys
            .read()
            .expect("not poisoned")
            .get(&hash)
            .cloned()?;
        let tenant = self.tenant_entry(&id)?;
        tenant.record().key_hash.ct_eq(&hash).then_some(id)
    }

    /// Makes sure the tenant [`DEFAULT_TENANT`] (enterprise tier) exists with `key` as its
    /// key: the single-user mode of `--api-key`. Its key follows `key` across restarts.
    ///
    /// # Errors
    /// The store's.
    pub async fn ensure_default_tenant(&self, key: &str) -> Result<TenantId, TenantError> {
        let hash = KeyHash::of(key);
        let existing = {
            let tenants = self.tenants.read().expect("not poisoned");
            tenants
                .values()
                .map(|t| t.record())
                .filter(|r| r.name == DEFAULT_TENANT)
                .min_by_key(|r| (r.created_ms, r.id.clone()))
        };
        if let Some(mut rec) = existing {
            if !rec.key_hash.ct_eq(&hash) {
                let old = rec.key_hash;
                rec.key_hash = hash;
                self.put_tenant(&rec).await?;
                let mut keys = self.keys.write().expect("not poisoned");
                keys.remove(&old);
                keys.insert(hash, rec.id.clone());
                if let Some(t) = self.tenant_entry(&rec.id) {
                    *t.record.lock().expect("not poisoned") = rec.clone();
                }
            }
            return Ok(rec.id);
        }
        let info = self
            .insert_tenant(DEFAULT_TENANT, Some(QuotaTier::Enterprise), hash)
            .await?;
        Ok(info.id)
    }

    async fn insert_tenant(
        &self,
        name: &str,
        tier: Option<QuotaTier>,
        key_hash: KeyHash,
    ) -> Result<TenantInfo, TenantError> {
        check_name("tenant", name)?;
        let rec = TenantRecord {
            version: RECORD_VERSION,
            id: TenantId::random(),
            name: name.to_owned(),
            tier,
            quota: Quota::for_tier(tier),
            key_hash,
            created_ms: self.clock.now_ms(),
            retired_events_in: 0,
            retired_output_events: 0,
        };
        self.put_tenant(&rec).await?;
        let tenant = Arc::new(Tenant::new(rec.clone()));
        let info = tenant.info();
        self.keys
            .write()
            .expect("not poisoned")
            .insert(key_hash, rec.id.clone());
        self.tenants
            .write()
            .expect("not poisoned")
            .insert(rec.id, tenant);
        Ok(info)
    }

    /// Creates a tenant; its key is returned once and stored only as a hash.
    ///
    /// # Errors
    /// A bad name; the store's errors.
    pub async fn create_tenant(
        &self,
        name: &str,
        tier: Option<QuotaTier>,
    ) -> Result<(TenantInfo, ApiKey), TenantError> {
        let key = ApiKey::random();
        let info = self
            .insert_tenant(name, tier, KeyHash::of(key.expose()))
            .await?;
        Ok((info, key))
    }

    /// A page of tenants, oldest first, and how many there are.
    #[must_use]
    pub fn list_tenants(&self, limit: usize, offset: usize) -> (Vec<TenantInfo>, usize) {
        let mut all = self.all_tenants();
        all.sort_by_cached_key(|t| {
            let r = t.record();
            (r.created_ms, r.id)
        });
        let total = all.len();
        let page = all
            .iter()
            .skip(offset)
            .take(limit)
            .map(|t| t.info())
            .collect();
        (page, total)
    }

    /// One tenant.
    ///
    /// # Errors
    /// [`TenantError::TenantNotFound`].
    pub fn tenant(&self, id: &TenantId) -> Result<TenantInfo, TenantError> {
        Ok(self.tenant_or_err(id)?.info())
    }

    /// Deletes a tenant with its pipelines, their logs and checkpoints; its key stops working
    /// at once. The tenant record goes last, so an interrupted deletion can be repeated.
    ///
    /// # Errors
    /// [`TenantError::TenantNotFound`]; the store's errors.
    pub async fn delete_tenant(&self, id: &TenantId) -> Result<(), TenantError> {
        let tenant = self.tenant_or_err(id)?;
        let _admin = tenant.admin.lock().await;
        let hash = tenant.record().key_hash;
        self.keys.write().expect("not poisoned").remove(&hash);
        for entry in tenant.entries() {
            let _runtime = entry.runtime.lock().await;
            entry.deleted.store(true, Ordering::Release);
            let rec = entry.shown().record;
            self.remove_pipeline_data(&rec).await?;
            tenant
                .pipelines
                .write()
                .expect("not poisoned")
                .remove(&rec.id);
        }
        self.store.delete(&self.layout.tenant(id)).await?;
        self.store.flush().await?;
        self.tenants.write().expect("not poisoned").remove(id);
        Ok(())
    }

    /// The tenant's usage: all its pipelines, deleted ones included.
    ///
    /// # Errors
    /// [`TenantError::TenantNotFound`].
    pub fn usage(&self, tenant: &TenantId) -> Result<Usage, TenantError> {
        Ok(self.tenant_or_err(tenant)?.usage())
    }
}
