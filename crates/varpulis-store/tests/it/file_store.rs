use std::fs;

use varpulis_store::testing::{FileHarness, Harness, block_on};
use varpulis_store::{FileStore, Key, StateStore};

fn k(s: &str) -> Key {
    Key::new(s).unwrap()
}

#[test]
fn lays_out_keys_as_documented() {
    block_on(async {
        let h = FileHarness::new();
        let s = h.open().await;
        s.put(&k("a:b:c"), b"1").await.unwrap();
        s.put(&k("a:b"), b"2").await.unwrap();
        s.put(&k("x.val:y"), b"3").await.unwrap();
        assert_eq!(fs::read(h.root().join("a/b/c.val")).unwrap(), b"1");
        assert_eq!(fs::read(h.root().join("a/b.val")).unwrap(), b"2");
        assert_eq!(fs::read(h.root().join("x.val~/y.val")).unwrap(), b"3");
    });
}

#[test]
fn open_removes_stale_temp_files_and_keeps_values() {
    block_on(async {
        let h = FileHarness::new();
        let s = h.open().await;
        s.put(&k("a:b"), b"committed").await.unwrap();
        // What a crash between create and rename leaves behind.
        let stale = h.root().join("a/b.val~tmp-999-1-deadbeef");
        fs::write(&stale, b"half").unwrap();
        let top = h.root().join("z.val~tmp-1-1-0000000a");
        fs::write(&top, b"half").unwrap();
        drop(s);
        let s = FileStore::open(h.root()).unwrap();
        assert!(!stale.exists() && !top.exists());
        assert_eq!(
            s.get(&k("a:b")).await.unwrap().as_deref(),
            Some(&b"committed"[..])
        );
        assert_eq!(s.list(&Key::root()).await.unwrap(), vec![k("a:b")]);
    });
}

#[test]
fn foreign_files_in_the_directory_are_ignored_by_list() {
    block_on(async {
        let h = FileHarness::new();
        let s = h.open().await;
        s.put(&k("a"), b"1").await.unwrap();
        fs::write(h.root().join("README"), b"not a value").unwrap();
        fs::create_dir(h.root().join("odd dir")).unwrap();
        fs::write(h.root().join("odd dir/v.val"), b"x").unwrap();
        assert_eq!(s.list(&Key::root()).await.unwrap(), vec![k("a")]);
    });
}

#[test]
fn io_errors_name_the_path() {
    block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        fs::write(&file, b"x").unwrap();
        let err = FileStore::open(file.join("sub")).unwrap_err();
        assert!(err.to_string().contains("plain-file"), "{err}");
    });
}
