//! Key records: the hex key text (`EncryptionKey::from_hex`, what `--key-file` and
//! `VARPULIS_ENCRYPTION_KEY` hold) and the key-check record read by `EncryptedStateStore::open`.
//!
//! Asserts: `from_hex` accepts exactly 64 hex digits after trimming whitespace, gives back the
//! same key (`to_hex` is the lowercased input), and its errors never echo the input; a
//! key-check record that `seal` did not produce never lets `open` succeed (it is `WrongKey` or
//! `Corrupt`), also when its header names the key so that authentication runs, and never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use varpulis_crypto::envelope::ENVELOPE_VERSION;
use varpulis_crypto::{EncryptedStateStore, EncryptionKey};
use varpulis_fuzz::block_on;
use varpulis_store::{Key, MemoryStore, StateStore, StoreError};

fn check_hex(text: &str) {
    let trimmed = text.trim();
    let valid = trimmed.len() == 64 && trimmed.bytes().all(|b| b.is_ascii_hexdigit());
    match EncryptionKey::from_hex(text) {
        Ok(key) => {
            assert!(valid, "accepted {text:?}");
            assert_eq!(*key.to_hex(), trimmed.to_ascii_lowercase());
            assert_eq!(format!("{key:?}"), "EncryptionKey(<redacted>)");
        }
        Err(e) => {
            assert!(!valid, "refused {text:?}: {e}");
            // The message is a fixed text plus numbers: with the digits removed it is the
            // message of one of the two errors for inputs that share nothing with this one.
            let shape = |e: &dyn std::fmt::Debug, s: String| {
                format!("{s} {e:?}").replace(|c: char| c.is_ascii_digit(), "")
            };
            let shown = shape(&e, e.to_string());
            let known: Vec<String> = ["", &"g".repeat(64)]
                .iter()
                .map(|t| {
                    let e = EncryptionKey::from_hex(t).unwrap_err();
                    shape(&e, e.to_string())
                })
                .collect();
            assert!(known.contains(&shown), "error may echo the input: {e}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        check_hex(&String::from_utf8_lossy(rest));
        return;
    }
    let key = EncryptionKey::from_bytes([0x2a; 32]);
    let mut record = rest.to_vec();
    if mode & 2 != 0 && record.len() >= 5 {
        record[0] = ENVELOPE_VERSION;
        record[1..5].copy_from_slice(&key.key_id().to_be_bytes());
    }
    let inner = MemoryStore::new();
    block_on(async {
        let check = Key::new("__varpulis-crypto:check").unwrap();
        inner.put(&check, &record).await.unwrap();
        match EncryptedStateStore::open(inner, key).await {
            Err(StoreError::WrongKey { .. } | StoreError::Corrupt { .. }) => {}
            Err(e) => panic!("unexpected error class for a bad key-check record: {e:?}"),
            Ok(_) => panic!("a key-check record not produced by seal was accepted"),
        }
    });
});
