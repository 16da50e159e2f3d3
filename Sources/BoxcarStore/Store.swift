#if canImport(Glibc)
import Glibc
#endif
import BoxcarModel
import BoxcarStorage
import Dispatch
import Logging
import Synchronization

// BoxcarStore: the agent's SQLite file, the embedded default store. Schema and migrations, one
// writer thread with group commit (a write returns once committed), readers beside it (WAL),
// metric blocks, and the removals retention asks for. It conforms to BoxcarStorage's
// RecordStore, so the services serve it without knowing it is SQLite; it knows nothing of gRPC,
// HTTP or the sensors.

/// How hard a commit tries to reach the disk.
public enum Durability: String, Sendable, CaseIterable {
    /// synchronous=NORMAL in WAL mode: a commit survives a crash of the agent, not of the machine.
    case normal
    /// synchronous=FULL: a commit survives power loss too, at an fsync per commit.
    case full
}

/// The SQLite database: one writer thread with group commit, and a pool of reader connections
/// that WAL lets run beside it.
public final class Store: Sendable {
    public let path: String
    let writer: Writer?
    private let readers: Mutex<[Connection]>
    private let readQueue = DispatchQueue(label: "boxcar.store.read", attributes: .concurrent)

    /// Opens (creating if needed) the database at `path` for the agent: migrates it and starts the
    /// writer.
    public static func open(
        path: String, durability: Durability = .normal, queueCapacity: Int = 8192,
        logger: Logger = Logger(label: "boxcar.store")
    ) throws -> Store {
        try refuseDirectory(path)
        // One writer per database: a second agent on the same file would reuse sequence numbers.
        let lock = Glibc.open(path + ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lock >= 0 else {
            throw SQLiteError(code: 1, message: "cannot create \(path).lock: \(String(cString: strerror(errno)))")
        }
        guard flock(lock, LOCK_EX | LOCK_NB) == 0 else {
            Glibc.close(lock)
            throw SQLiteError(code: 1, message: "another boxcar agent is writing to \(path)")
        }
        let connection: Connection
        do {
            connection = try Connection(path: path, readOnly: false)
            // Before anything is written: switching to WAL rewrites the header.
            _ = try Migrations.checkedVersion(connection, path: path)
        } catch {
            Glibc.close(lock)
            throw error
        }
        try connection.execute("PRAGMA journal_mode = WAL")
        // A checkpoint truncates the WAL back to this, so a burst does not leave it large.
        try connection.execute("PRAGMA journal_size_limit = \(32 << 20)")
        try connection.execute("PRAGMA synchronous = \(durability == .full ? "FULL" : "NORMAL")")
        try connection.execute("PRAGMA foreign_keys = OFF")
        // Debian's SQLite zeroes every page it frees (SECURE_DELETE). Compaction frees a head
        // row's overflow pages every stretch, and zeroing them wrote each page to the WAL again,
        // to the statement journal first, and back at the checkpoint: a quarter of the storage's
        // pwrite and pread calls (strace, storage-host). FAST still zeroes what is deleted from
        // pages that stay in use; pages on the free list keep their bytes until reused. (Where
        // SQLite is built without it, the default is OFF, and FAST adds only that zeroing in
        // pages already written, no I/O.)
        try connection.execute("PRAGMA secure_delete = FAST")
        try Migrations.migrate(connection)
        let writer = try Writer(connection: connection, capacity: queueCapacity, logger: logger)
        return Store(path: path, writer: writer, lock: lock, commitsOnCaller: durability == .normal)
    }

    /// Opens an existing database for reading only, also while an agent writes to it.
    public static func openReadOnly(path: String) throws -> Store {
        try refuseDirectory(path)
        let connection = try Connection(path: path, readOnly: true)
        let version = try Migrations.checkedVersion(connection, path: path)
        guard version > 0 else {
            throw SQLiteError(code: 1, message: "\(path) is not a boxcar database")
        }
        try Migrations.readAsCurrent(connection, version: version)
        let store = Store(path: path, writer: nil, lock: -1, version: version)
        store.giveBack(connection)
        return store
    }

    /// SQLite says only "disk I/O error" of a directory given as the database.
    private static func refuseDirectory(_ path: String) throws {
        var info = stat()
        if stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR {
            throw DatabasePathError(description: "\(path) is a directory; the database is a file (for example \(path)/boxcar.db)")
        }
    }

    public struct DatabasePathError: Error, CustomStringConvertible {
        public let description: String
    }

    /// The descriptor holding the writer's lock on `<path>.lock`; -1 for read-only stores.
    private let lock: Int32

    /// The schema version of the file: the current one once a writer has migrated it; an older
    /// one for a read-only store of a database an older agent writes.
    private let version: Int

    /// When a write may commit on its caller's thread (`commitOnCaller(when:)`); nil: never. (In
    /// a struct: a bare closure read out of the generic Mutex's inout value is wrapped in two more
    /// reabstraction thunks at each read, and each write then ran through all of them.)
    private let callerCommits = Mutex<CallerCommitRule?>(nil)
    private struct CallerCommitRule {
        let applies: @Sendable () -> Bool
    }
    private let commitsOnCaller: Bool

    private init(path: String, writer: Writer?, lock: Int32, version: Int = Migrations.all.count, commitsOnCaller: Bool = false) {
        self.path = path
        self.writer = writer
        self.readers = Mutex([])
        self.lock = lock
        self.version = version
        self.commitsOnCaller = commitsOnCaller
    }

    deinit {
        if lock >= 0 { Glibc.close(lock) }
    }

    /// Commits every write already accepted, then refuses new ones. The lock on the database is
    /// held until the store is released, so no other agent starts writing before this one is done.
    public func close() async {
        await writer?.close()
    }

    /// Lets each small write that is awaited (not the queued ones: `submitIngest`, `appendTicks`)
    /// commit on its caller's thread whenever `rule` says so at the write and the writer thread
    /// has nothing queued or committing (`Writer.write(_:here:)`): the agent's rule is "on the
    /// RPC event loop, the only call open", where waking the writer and being woken by it cost a
    /// lone unary call more than its commit. The caller's thread then blocks for the commit, never
    /// for a checkpoint (the writer thread runs those). Ignored under `--durability full`: each
    /// commit's fsync would hold the caller.
    public func commitOnCaller(when rule: @escaping @Sendable () -> Bool) {
        guard commitsOnCaller else { return }
        callerCommits.withLock { $0 = CallerCommitRule(applies: rule) }
    }

    /// Writes waiting for the writer thread.
    public var pendingWrites: Int { writer?.pending ?? 0 }

    /// Whether writes are refused: closed, or opened read-only.
    public var isClosed: Bool { writer?.isClosed ?? true }

    /// How long the writer's transactions took, begin to commit (empty for a read-only store).
    public var commitLatency: Histogram { writer?.commitLatency ?? Histogram() }

    /// The CPU time the writer thread has used (its jobs, commits and wake-ups), as of the last
    /// group it committed; zero for a read-only store. Writes committed on their callers' threads
    /// (`commitOnCaller`) are their callers'.
    public var writerCPUTime: Duration { writer?.cpuTime ?? .zero }
    /// Why the last write failed, when the disk or the file made it fail and nothing has been
    /// committed since (the disk full, an I/O error); nil while writes commit.
    public var storageFault: String? { writer?.fault }

    /// The sequence number of the last committed record.
    public var lastSequence: Int64 {
        if let writer { return writer.lastSequence }
        return (try? readSync { connection in try Self.committedSequence(connection) }) ?? 0
    }

    // MARK: Plumbing for the operations in Store+Writes and Store+Reads

    /// `rows`: about how many rows the write inserts; one of more than `rowsCommittedOnCaller`
    /// (TrackArtifacts' 10,000 files) always goes to the writer, whatever the caller.
    func write<R: Sendable>(rows: Int = 1, _ body: @escaping @Sendable (WriteContext) throws -> R) async throws -> R {
        guard let writer else { throw ReadOnlyError(location: path) }
        let here = rows <= Self.rowsCommittedOnCaller && (callerCommits.withLock { $0 }?.applies() ?? false)
        return try await writer.write(body, here: here)
    }

    /// The most rows a write committed on its caller's thread inserts: a few hundred microseconds
    /// at most, where a call's own answer takes that long anyway.
    static let rowsCommittedOnCaller = 64

    /// Runs `body` on a pooled reader connection, off the Swift concurrency pool, inside one read
    /// transaction (so it sees one snapshot).
    func read<R: Sendable>(_ body: @escaping @Sendable (Connection) throws -> R) async throws -> R {
        try await withCheckedThrowingContinuation { continuation in
            readQueue.async {
                continuation.resume(with: Result { try self.readSync(body) })
            }
        }
    }

    private func readSync<R>(_ body: (Connection) throws -> R) throws -> R {
        let connection = try borrow()
        defer { giveBack(connection) }
        try connection.execute("BEGIN")
        defer {
            connection.resetAllStatements()
            try? connection.execute("COMMIT")
        }
        return try body(connection)
    }

    private func borrow() throws -> Connection {
        if let connection = readers.withLock({ $0.popLast() }) { return connection }
        let connection = try Connection(path: path, readOnly: true)
        try Migrations.readAsCurrent(connection, version: version)
        return connection
    }

    private func giveBack(_ connection: Connection) {
        readers.withLock { pool in
            if pool.count < 8 { pool.append(connection) }
        }
    }
}

/// The agent's SQLite file serves the services; its operations are in Store+Writes and Store+Reads.
extension Store: RecordStore {
    public var location: String { path }
}
