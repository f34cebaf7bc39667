//! Tuning knobs for [`RocksDbStore`](crate::RocksDbStore).

use rocksdb::DBCompressionType;

/// Block compression for SST files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Compression {
    /// No compression.
    None,
    /// LZ4: fast, modest ratio. The default.
    #[default]
    Lz4,
}

/// How [`RocksDbStore::open_with`](crate::RocksDbStore::open_with) configures RocksDB.
///
/// [`Default`] is the seed configuration: LZ4 compression, 64 MiB write buffer, 3 write
/// buffers, 64 MiB target SST file size, create the database if missing, no fsync per write.
/// Change fields on a default value:
///
/// ```
/// use varpulis_store_rocks::RocksDbOptions;
/// let mut options = RocksDbOptions::default();
/// options.write_buffer_size = 16 << 20;
/// options.sync_writes = true;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RocksDbOptions {
    /// SST block compression (default [`Compression::Lz4`]).
    pub compression: Compression,
    /// Bytes a memtable holds before it is frozen and flushed (default 64 MiB).
    pub write_buffer_size: usize,
    /// Most memtables kept in memory, active plus frozen (default 3).
    pub max_write_buffers: u32,
    /// Target size of an SST file at level 1 (default 64 MiB).
    pub target_file_size: u64,
    /// Create the directory and database when absent (default `true`).
    pub create_if_missing: bool,
    /// `fsync` the write-ahead log on every write, so each write survives power loss when it
    /// returns, not only after [`flush`](varpulis_store::StateStore::flush) (default `false`:
    /// writes survive a process crash, `flush` adds power-loss durability).
    pub sync_writes: bool,
}

impl Default for RocksDbOptions {
    fn default() -> Self {
        Self {
            compression: Compression::Lz4,
            write_buffer_size: 64 << 20,
            max_write_buffers: 3,
            target_file_size: 64 << 20,
            create_if_missing: true,
            sync_writes: false,
        }
    }
}

impl RocksDbOptions {
    pub(crate) fn to_rocksdb(&self) -> rocksdb::Options {
        let mut o = rocksdb::Options::default();
        o.create_if_missing(self.create_if_missing);
        o.set_compression_type(match self.compression {
            Compression::None => DBCompressionType::None,
            Compression::Lz4 => DBCompressionType::Lz4,
        });
        o.set_write_buffer_size(self.write_buffer_size);
        o.set_max_write_buffer_number(i32::try_from(self.max_write_buffers).unwrap_or(i32::MAX));
        o.set_target_file_size_base(self.target_file_size);
        // RocksDB's default, stated: after a crash, replay the log up to the first damaged
        // record rather than refusing to open.
        o.set_wal_recovery_mode(rocksdb::DBRecoveryMode::PointInTime);
        o
    }
}
