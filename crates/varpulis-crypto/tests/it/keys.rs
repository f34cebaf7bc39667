//! Keys: parsing, ids, passphrases, and that no secret is ever printed.

use varpulis_crypto::{
    CryptoError, EncryptedStateStore, EncryptionKey, KeyId, Keyring, envelope_key_id,
};
use varpulis_store::{MemoryStore, StateStore, StoreError};

use crate::common::{fast_kdf, k, key, run};

const HEX: &str = "00112233445566778899aabbccddeeff0123456789abcdeffedcba9876543210";

#[test]
fn hex_key_parses_either_case_and_ignores_surrounding_whitespace() {
    let lower = EncryptedStateStore::<MemoryStore>::key_from_hex(HEX).unwrap();
    let upper = EncryptionKey::from_hex(&format!("  {}\n", HEX.to_uppercase())).unwrap();
    assert_eq!(lower.key_id(), upper.key_id());
    assert_eq!(*lower.to_hex(), HEX);
}

#[test]
fn hex_key_of_wrong_length_is_rejected_without_echoing_it() {
    for bad in ["", "abc", &HEX[..62], &format!("{HEX}00")] {
        let err = EncryptionKey::from_hex(bad).unwrap_err();
        assert!(
            matches!(err, CryptoError::KeyLength { found } if found == bad.len()),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("64 hex characters"), "{msg}");
        if !bad.is_empty() {
            assert!(!msg.contains(bad), "error echoes the key: {msg}");
        }
    }
}

#[test]
fn hex_key_with_a_non_hex_character_names_its_position_only() {
    let bad = format!("{}zz{}", &HEX[..10], &HEX[12..]);
    let err = EncryptionKey::from_hex(&bad).unwrap_err();
    assert!(
        matches!(err, CryptoError::KeyNotHex { position: 10 }),
        "{err:?}"
    );
    assert!(!err.to_string().contains(&bad[..10]));
    let non_ascii = format!("{}\u{e9}{}", &HEX[..10], &HEX[12..]);
    assert!(matches!(
        EncryptionKey::from_hex(&non_ascii),
        Err(CryptoError::KeyNotHex { position: 10 })
    ));
    let as_store_error: StoreError = err.into();
    assert!(matches!(as_store_error, StoreError::WrongKey { .. }));
}

/// The facade's documentation uses exactly this line; it must keep compiling with `?`.
#[allow(dead_code)]
fn seed_snippet() -> Result<EncryptionKey, Box<dyn std::error::Error>> {
    let key = EncryptedStateStore::<MemoryStore>::key_from_hex(&std::env::var(
        "VARPULIS_ENCRYPTION_KEY",
    )?)?;
    let _store = EncryptedStateStore::new(MemoryStore::new(), key.clone());
    let _also = EncryptedStateStore::<MemoryStore>::key_from_env()?;
    Ok(key)
}

#[test]
fn key_id_is_derived_from_the_key_and_stable_across_versions() {
    assert_eq!(key(1).key_id(), KeyId::from_u32(0x3ccd_7e7d));
    assert_eq!(key(1).key_id().to_string(), "3ccd7e7d");
    assert_eq!(key(1).clone().key_id(), key(1).key_id());
    assert_ne!(key(1).key_id(), key(2).key_id());
}

#[test]
fn passphrase_keys_depend_on_passphrase_salt_and_params() {
    type E = EncryptedStateStore<MemoryStore>;
    let a = E::key_from_passphrase_with("correct horse", b"salt-0001", fast_kdf()).unwrap();
    let same = E::key_from_passphrase_with("correct horse", b"salt-0001", fast_kdf()).unwrap();
    let other_salt =
        E::key_from_passphrase_with("correct horse", b"salt-0002", fast_kdf()).unwrap();
    let other_pass =
        E::key_from_passphrase_with("correct horsf", b"salt-0001", fast_kdf()).unwrap();
    let default_params = E::key_from_passphrase("correct horse", b"salt-0001").unwrap();
    assert_eq!(a.key_id(), same.key_id());
    for different in [&other_salt, &other_pass, &default_params] {
        assert_ne!(a.key_id(), different.key_id());
    }
    assert!(matches!(
        E::key_from_passphrase("x", b"short"),
        Err(CryptoError::Kdf { .. })
    ));
}

#[test]
fn keyring_refuses_to_lose_its_active_key_or_activate_an_unknown_one() {
    let mut ring = Keyring::new(key(1));
    assert_eq!(ring.add(key(2)).unwrap(), key(2).key_id());
    assert_eq!(
        ring.add(key(2)).unwrap(),
        key(2).key_id(),
        "adding twice is a no-op"
    );
    assert_eq!(ring.key_ids().len(), 2);
    assert!(matches!(
        ring.remove(key(1).key_id()),
        Err(CryptoError::ActiveKey { .. })
    ));
    assert!(matches!(
        ring.set_active(key(9).key_id()),
        Err(CryptoError::UnknownKeyId { .. })
    ));
    ring.set_active(key(2).key_id()).unwrap();
    ring.remove(key(1).key_id()).unwrap();
    assert_eq!(ring.key_ids(), vec![key(2).key_id()]);
}

#[test]
fn debug_output_never_contains_key_material() {
    run(async {
        let secret = EncryptionKey::from_hex(HEX).unwrap();
        let id = secret.key_id();
        let mut ring = Keyring::new(secret.clone());
        ring.add(key(0xab)).unwrap();
        let store = EncryptedStateStore::open_with_keyring(MemoryStore::new(), ring.clone())
            .await
            .unwrap();
        store.put(&k("v"), b"value").await.unwrap();
        let texts = [
            format!("{secret:?}"),
            format!("{secret:#?}"),
            format!("{ring:?}"),
            format!("{ring:#?}"),
            format!("{store:?}"),
            format!("{store:#?}"),
            format!("{:?}", store.get(&k("v")).await),
        ];
        assert_eq!(texts[0], "EncryptionKey(<redacted>)");
        assert!(texts[4].contains(&id.to_string()), "{}", texts[4]);
        let upper = HEX.to_uppercase();
        let key_ab = key(0xab).to_hex();
        let decimal = format!("{:?}", [0x00_u8, 0x11, 0x22, 0x33]);
        for text in &texts {
            for needle in [
                HEX,
                &upper,
                &HEX[..16],
                &key_ab[..16],
                "171, 171, 171",
                &decimal[1..12],
            ] {
                assert!(!text.contains(needle), "{text} contains {needle}");
            }
        }
        // The raw envelope names the key only by its id.
        let raw = store.inner().get(&k("v")).await.unwrap().unwrap();
        assert_eq!(envelope_key_id(&raw), Some(id));
    });
}
