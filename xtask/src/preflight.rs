//! Checks, before anything is built, for what the build needs from the machine, so that a fresh
//! machine fails in a second with the command to run instead of minutes into a RocksDB build.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// The directories `clang-sys` (through `bindgen`, for `librocksdb-sys`) searches on Linux,
/// after `LIBCLANG_PATH`.
const SEARCHED: &[&str] = &[
    "/usr/lib",
    "/usr/lib64",
    "/usr/local/lib",
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
];

/// Whether `name` is a libclang shared library as `clang-sys` looks for it: `libclang.so`,
/// `libclang.so.1`, `libclang-14.so`, ... (not `libclang-cpp`, which is another library).
fn is_libclang(name: &str) -> bool {
    name.starts_with("libclang.so")
        || name.strip_prefix("libclang-").is_some_and(|rest| {
            rest.starts_with(|c: char| c.is_ascii_digit()) && rest.contains(".so")
        })
}

fn holds_libclang(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_str().is_some_and(is_libclang))
    })
}

/// The directories to search: `LIBCLANG_PATH`, every `/usr/lib/llvm-*/lib`, then [`SEARCHED`].
fn candidates() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("LIBCLANG_PATH") {
        let p = PathBuf::from(p);
        // LIBCLANG_PATH may name the library itself.
        dirs.push(if p.is_file() {
            p.parent().map(Path::to_path_buf).unwrap_or_default()
        } else {
            p
        });
    }
    for root in ["/usr/lib", "/usr/local"] {
        if let Ok(entries) = std::fs::read_dir(root) {
            let mut llvm: Vec<PathBuf> = entries
                .flatten()
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n.starts_with("llvm"))
                })
                .map(|e| e.path().join("lib"))
                .collect();
            llvm.sort();
            dirs.extend(llvm);
        }
    }
    dirs.extend(SEARCHED.iter().map(PathBuf::from));
    dirs
}

/// Fails, with the command that fixes it, when no libclang can be found. Only Linux is checked:
/// elsewhere the build reports it as usual.
pub(crate) fn libclang() -> Result<()> {
    if !cfg!(target_os = "linux") || candidates().iter().any(|d| holds_libclang(d)) {
        return Ok(());
    }
    bail!(
        "libclang is missing: RocksDB's bindings (librocksdb-sys, through bindgen) need it, and \
         the build would fail minutes from now. Install it with\n\n    \
         sudo apt-get install -y libclang-dev\n\n\
         (or set LIBCLANG_PATH to the directory that holds libclang.so)"
    );
}

#[cfg(test)]
mod tests {
    use super::is_libclang;

    #[test]
    fn recognises_the_names_clang_sys_loads_and_not_libclang_cpp() {
        for yes in [
            "libclang.so",
            "libclang.so.1",
            "libclang-14.so",
            "libclang-14.so.1",
            "libclang-14.0.6.so",
        ] {
            assert!(is_libclang(yes), "{yes}");
        }
        for no in [
            "libclang-cpp.so.14",
            "libclangAST.a",
            "libclang-cpp.so",
            "libclang.a",
        ] {
            assert!(!is_libclang(no), "{no}");
        }
    }
}
