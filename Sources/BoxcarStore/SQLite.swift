import BoxcarStorage
import CSQLite

/// An error reported by SQLite, with its extended result code and message.
public struct SQLiteError: StorageError, Sendable {
    public var code: Int32
    public var message: String

    public var description: String { "SQLite error \(code): \(message)" }

    /// The disk or the database's quota is full: callers answer RESOURCE_EXHAUSTED.
    public var isOutOfSpace: Bool { code & 0xff == SQLITE_FULL }

    /// The disk or the file failed the write, not the statement: the store cannot take writes now.
    public var isStorageFault: Bool {
        [SQLITE_FULL, SQLITE_IOERR, SQLITE_READONLY, SQLITE_CORRUPT, SQLITE_CANTOPEN, SQLITE_NOTADB].contains(code & 0xff)
    }
}

/// One SQLite connection, opened with SQLITE_OPEN_NOMUTEX: it is owned by one thread at a time
/// (the writer's, or a reader's while borrowed from the pool), which is what makes it Sendable.
final class Connection: @unchecked Sendable {
    let handle: OpaquePointer
    private var cache: [String: Statement] = [:]

    init(path: String, readOnly: Bool) throws {
        var db: OpaquePointer?
        let flags =
            (readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE))
            | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close(db)
            throw SQLiteError(code: rc, message: "cannot open \(path): \(message)")
        }
        handle = db
        sqlite3_extended_result_codes(db, 1)
        // A reader may meet the writer's checkpoint; wait briefly rather than fail.
        sqlite3_busy_timeout(db, 5000)
    }

    deinit {
        cache.removeAll()
        sqlite3_close_v2(handle)
    }

    func execute(_ sql: String) throws {
        var error: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &error)
        if rc != SQLITE_OK {
            let message = error.map { String(cString: $0) } ?? "unknown"
            sqlite3_free(error)
            throw SQLiteError(code: rc, message: message)
        }
    }

    /// A prepared statement, reused for every call with the same SQL text.
    func statement(_ sql: String) throws -> Statement {
        if let cached = cache[sql] {
            cached.reset()
            return cached
        }
        let statement = try Statement(connection: self, sql: sql)
        cache[sql] = statement
        return statement
    }

    func error(_ rc: Int32) -> SQLiteError {
        SQLiteError(code: rc, message: String(cString: sqlite3_errmsg(handle)))
    }

    var changes: Int { Int(sqlite3_changes(handle)) }

    /// True outside a transaction.
    var isAutocommit: Bool { sqlite3_get_autocommit(handle) != 0 }

    /// Resets every statement of the connection: a statement left stepping (a read that threw
    /// halfway) would pin its snapshot and keep the WAL from being checkpointed.
    func resetAllStatements() {
        var statement = sqlite3_next_stmt(handle, nil)
        while let current = statement {
            sqlite3_reset(current)
            statement = sqlite3_next_stmt(handle, current)
        }
    }
}

final class Statement {
    private let handle: OpaquePointer
    private unowned let connection: Connection

    fileprivate init(connection: Connection, sql: String) throws {
        var statement: OpaquePointer?
        let rc = sqlite3_prepare_v3(
            connection.handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard rc == SQLITE_OK, let statement else { throw connection.error(rc) }
        self.handle = statement
        self.connection = connection
    }

    deinit { sqlite3_finalize(handle) }

    func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    // MARK: Binding (1-based, as SQLite counts)

    func bind(_ index: Int32, _ value: Int64) {
        sqlite3_bind_int64(handle, index, value)
    }

    func bind(_ index: Int32, _ value: Int64?) {
        if let value { sqlite3_bind_int64(handle, index, value) } else { sqlite3_bind_null(handle, index) }
    }

    func bind(_ index: Int32, _ value: Double) {
        sqlite3_bind_double(handle, index, value)
    }

    func bind(_ index: Int32, _ value: String) {
        // By its length: a -1 would end the text at an embedded NUL, and "id\0" would find "id".
        sqlite3_bind_text(handle, index, value, Int32(value.utf8.count), csqlite_transient())
    }

    func bind(_ index: Int32, _ value: String?) {
        if let value { bind(index, value) } else { sqlite3_bind_null(handle, index) }
    }

    func bindNull(_ index: Int32) {
        sqlite3_bind_null(handle, index)
    }

    func bind(_ index: Int32, blob: [UInt8]) {
        blob.withUnsafeBytes { raw in
            // A zero-length blob must still be a blob, not NULL: pass a non-nil pointer.
            _ = sqlite3_bind_blob64(
                handle, index, raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1), UInt64(raw.count),
                csqlite_transient())
        }
    }

    /// Binds each value in order from index 1.
    func bind(_ values: [any SQLBindable]) {
        for (offset, value) in values.enumerated() {
            value.bind(to: self, at: Int32(offset + 1))
        }
    }

    // MARK: Stepping

    /// Runs a statement that returns no rows.
    func run() throws {
        let rc = sqlite3_step(handle)
        // Reset after a failure too: a statement left mid-step (a cached COMMIT that met a full
        // disk) would hold the transaction's locks.
        guard rc == SQLITE_DONE || rc == SQLITE_ROW else {
            let error = connection.error(rc)
            sqlite3_reset(handle)
            throw error
        }
        sqlite3_reset(handle)
    }

    /// Advances to the next row; false when there is none.
    func step() throws -> Bool {
        let rc = sqlite3_step(handle)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        throw connection.error(rc)
    }

    // MARK: Columns (0-based, as SQLite counts)

    func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }

    func optionalInt64(_ column: Int32) -> Int64? {
        sqlite3_column_type(handle, column) == SQLITE_NULL ? nil : sqlite3_column_int64(handle, column)
    }

    func double(_ column: Int32) -> Double { sqlite3_column_double(handle, column) }

    func string(_ column: Int32) -> String {
        guard let text = sqlite3_column_text(handle, column) else { return "" }
        return String(cString: text)
    }

    func optionalString(_ column: Int32) -> String? {
        sqlite3_column_type(handle, column) == SQLITE_NULL ? nil : string(column)
    }

    /// Calls `body` with the column's bytes, valid only during the call (no copy).
    func withBlob<R>(_ column: Int32, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let count = Int(sqlite3_column_bytes(handle, column))
        guard count > 0, let base = sqlite3_column_blob(handle, column) else {
            return try body(UnsafeRawBufferPointer(start: nil, count: 0))
        }
        return try body(UnsafeRawBufferPointer(start: base, count: count))
    }
}

/// A value a statement parameter can take.
protocol SQLBindable {
    func bind(to statement: Statement, at index: Int32)
}

extension Int64: SQLBindable {
    func bind(to statement: Statement, at index: Int32) { statement.bind(index, self) }
}

extension Int: SQLBindable {
    func bind(to statement: Statement, at index: Int32) { statement.bind(index, Int64(self)) }
}

extension Int32: SQLBindable {
    func bind(to statement: Statement, at index: Int32) { statement.bind(index, Int64(self)) }
}

extension Double: SQLBindable {
    func bind(to statement: Statement, at index: Int32) { statement.bind(index, self) }
}

extension String: SQLBindable {
    func bind(to statement: Statement, at index: Int32) { statement.bind(index, self) }
}

extension Optional: SQLBindable where Wrapped: SQLBindable {
    func bind(to statement: Statement, at index: Int32) {
        switch self {
        case .some(let value): value.bind(to: statement, at: index)
        case .none: statement.bindNull(index)
        }
    }
}


func lastInsertRowID(_ connection: Connection) -> Int64 {
    sqlite3_last_insert_rowid(connection.handle)
}
