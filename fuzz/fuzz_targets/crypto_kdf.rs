//! The key-derivation record (`__varpulis-crypto:kdf`: Argon2id parameters and salt), decoded
//! through `varpulis_crypto::fuzzing`.
//!
//! Asserts: decoding never panics and never accepts parameters above the documented limits
//! (`MAX_M_COST_KIB`, `MAX_T_COST`, `MAX_P_COST`) or a salt shorter than `MIN_SALT_LEN`; an
//! accepted record re-encodes to exactly its bytes (the layout is canonical); a record with
//! cheap parameters opens a passphrase store whose passphrase then opens it again and whose
//! wrong passphrase is `WrongKey`. Argon2 never runs with the fuzzed parameters unless they are
//! at most 64 KiB and 2 passes, so the target stays fast.
#![no_main]

use libfuzzer_sys::fuzz_target;
use varpulis_crypto::fuzzing::{decode_kdf_record, encode_kdf_record};
use varpulis_crypto::{
    EncryptedStateStore, KdfParams, MAX_M_COST_KIB, MAX_P_COST, MAX_T_COST, MIN_SALT_LEN,
};
use varpulis_fuzz::block_on;
use varpulis_store::{Key, MemoryStore, StateStore, StoreError};

fuzz_target!(|data: &[u8]| {
    let Ok((params, salt)) = decode_kdf_record(data) else {
        return;
    };
    assert!(params.m_cost_kib() <= MAX_M_COST_KIB, "{params:?}");
    assert!(
        params.t_cost() <= MAX_T_COST && params.p_cost() <= MAX_P_COST,
        "{params:?}"
    );
    assert!(
        params.t_cost() >= 1 && params.p_cost() >= 1 && params.m_cost_kib() >= 8 * params.p_cost()
    );
    assert!(salt.len() >= MIN_SALT_LEN && salt.len() <= 255);
    assert_eq!(
        encode_kdf_record(params, &salt),
        data,
        "re-encoding differs"
    );
    if params.m_cost_kib() > 64 || params.t_cost() > 2 {
        return;
    }
    let inner = MemoryStore::new();
    block_on(async {
        let kdf = Key::new("__varpulis-crypto:kdf").unwrap();
        inner.put(&kdf, data).await.unwrap();
        // The stored record wins over the parameters passed.
        let ignored = KdfParams::new(MAX_M_COST_KIB, MAX_T_COST, 1).unwrap();
        let store = EncryptedStateStore::open_with_passphrase(inner, "fuzz", ignored)
            .await
            .expect("a valid record opens");
        let inner = store.into_inner();
        assert_eq!(inner.get(&kdf).await.unwrap().as_deref(), Some(data));
        let store = EncryptedStateStore::open_with_passphrase(inner, "fuzz", ignored)
            .await
            .expect("the same passphrase opens again");
        match EncryptedStateStore::open_with_passphrase(store.into_inner(), "other", ignored).await
        {
            Err(StoreError::WrongKey { .. }) => {}
            other => panic!("wrong passphrase: {:?}", other.map(|_| ())),
        }
    });
});
