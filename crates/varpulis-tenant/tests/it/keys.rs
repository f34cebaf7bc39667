//! Keys: random, shown once, stored as a hash, never in a listing, a `Debug` or the store.

use varpulis_store::Key;
use varpulis_tenant::QuotaTier;

use super::{clock, memory, open};

#[tokio::test]
async fn a_key_names_its_tenant_only() {
    let r = open(&memory(), &clock()).await;
    let (a, ka) = r.create_tenant("a", None).await.expect("a");
    let (b, kb) = r
        .create_tenant("b", Some(QuotaTier::Free))
        .await
        .expect("b");
    assert_eq!(r.authenticate(ka.expose()), Some(a.id.clone()));
    assert_eq!(r.authenticate(kb.expose()), Some(b.id.clone()));
    assert_ne!(ka.expose(), kb.expose());
    assert!(ka.expose().starts_with("vpk_") && ka.expose().len() == 68);
    assert_eq!(r.authenticate("vpk_wrong"), None);
    assert_eq!(r.authenticate(""), None);
    assert!(
        !r.is_admin(ka.expose()),
        "no admin key set: nothing is admin"
    );
    r.set_admin_key("operator-key-0123456789");
    assert!(r.is_admin("operator-key-0123456789"));
    assert!(!r.is_admin(ka.expose()));
}

#[tokio::test]
async fn no_key_is_in_a_debug_a_listing_or_the_stored_bytes() {
    let store = memory();
    let r = open(&store, &clock()).await;
    r.set_admin_key("operator-key-0123456789");
    r.ensure_default_tenant("operator-key-0123456789")
        .await
        .expect("default");
    let (t, key) = r.create_tenant("a", None).await.expect("a");
    r.create_pipeline(&t.id, "p", "stream A = Txn")
        .await
        .expect("pipeline");
    let secret = key.expose().to_owned();
    assert_eq!(format!("{key:?}"), "ApiKey(***)");
    let shown = format!("{:?} {:?} {r:?}", r.list_tenants(100, 0), r.tenant(&t.id));
    assert!(
        !shown.contains(&secret) && !shown.contains("operator-key"),
        "{shown}"
    );
    let root = Key::new("varpulis-server").expect("key");
    let keys = store.list(&root).await.expect("list");
    assert!(keys.len() >= 3, "{keys:?}");
    for k in keys {
        let value = store.get(&k).await.expect("get").expect("listed");
        for needle in [secret.as_bytes(), b"operator-key-0123456789".as_slice()] {
            assert!(
                !value.windows(needle.len()).any(|w| w == needle),
                "{k} holds a key in clear"
            );
        }
    }
}

#[tokio::test]
async fn the_default_tenant_takes_the_operator_key_and_follows_it_across_restarts() {
    let store = memory();
    let c = clock();
    let r = open(&store, &c).await;
    let id = r
        .ensure_default_tenant("first-operator-key-000")
        .await
        .expect("default");
    assert_eq!(r.authenticate("first-operator-key-000"), Some(id.clone()));
    assert_eq!(r.tenant(&id).expect("t").tier, Some(QuotaTier::Enterprise));
    drop(r);
    let r = open(&store, &c).await;
    assert_eq!(
        r.ensure_default_tenant("second-operator-key-00")
            .await
            .expect("again"),
        id
    );
    assert_eq!(r.authenticate("second-operator-key-00"), Some(id));
    assert_eq!(r.authenticate("first-operator-key-000"), None);
    assert_eq!(r.list_tenants(10, 0).1, 1, "not a second default tenant");
}

#[tokio::test]
async fn deleting_a_tenant_removes_every_key_it_had_in_the_store() {
    let store = memory();
    let r = open(&store, &clock()).await;
    let (keep, _) = r.create_tenant("keep", None).await.expect("keep");
    let (t, key) = r.create_tenant("gone", None).await.expect("gone");
    let p = r
        .create_pipeline(
            &t.id,
            "p",
            "stream A = Txn .window(2) .aggregate(n: count())",
        )
        .await
        .expect("p");
    r.process(&t.id, &p.id, vec![super::txn(1, 1)], None)
        .await
        .expect("batch");
    r.checkpoint(&t.id, &p.id).await.expect("checkpoint");
    r.process(&t.id, &p.id, vec![super::txn(2, 1)], None)
        .await
        .expect("batch");
    r.delete_tenant(&t.id).await.expect("delete");
    assert_eq!(r.authenticate(key.expose()), None);
    let root = Key::new("varpulis-server").expect("key");
    let left: Vec<String> = store
        .list(&root)
        .await
        .expect("list")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(left.iter().all(|k| !k.contains(t.id.as_str())), "{left:?}");
    assert!(
        left.iter().any(|k| k.contains(keep.id.as_str())),
        "{left:?}"
    );
}
