#if canImport(Glibc)
import Glibc
#endif

/// Retention of the machine's own series (parent `host`): points older than a cutoff are removed
/// in small write jobs, queued with ingest like any write, so that a large removal never holds
/// the writer for long. Experiments' data is never removed here, nor (unless the disk forces it)
/// the machine's points inside the windows trainers were attached to an experiment: its
/// `system/…` series read them.
extension Store {
    /// The database's size: the file (and its WAL), and the bytes its pages hold in use (SQLite
    /// reuses freed pages before it grows the file, so removal shows in `used` first).
    public struct Size: Sendable, Equatable {
        public var fileBytes: Int64
        public var usedBytes: Int64
    }

    /// The file and its WAL on disk, without a read of the database (for a scrape).
    public var fileBytes: Int64 { fileSize(path) + fileSize(path + "-wal") }

    public func size() async throws -> Size {
        let path = self.path
        return try await read { connection in
            func pragma(_ name: String) throws -> Int64 {
                let statement = try connection.statement("PRAGMA \(name)")
                defer { statement.reset() }
                return try statement.step() ? statement.int64(0) : 0
            }
            let pageSize = try pragma("page_size")
            let used = (try pragma("page_count") - pragma("freelist_count")) * pageSize
            return Size(fileBytes: fileSize(path) + fileSize(path + "-wal"), usedBytes: used)
        }
    }

    /// How removal treats blocks the upstream has not acknowledged yet (forwarding is on).
    public enum Unforwarded: Sendable {
        /// No upstream: remove what is old.
        case remove
        /// Keep them until acknowledged (removal by age).
        case keep
        /// Remove them, and record the removed run as a skipped range for the forwarder to ship
        /// in their place (removal the disk limit forces).
        case skip
    }

    /// Removes up to `limit` blocks and head ticks of host series whose newest point is older than
    /// `cutoff` (nanoseconds since the epoch); returns how many it removed. Those the outbox
    /// readers named in `keepingUnreadBy` (their `cursor` names: each remote-write receiver) have
    /// not passed are kept, and with `keepingAttached` those inside an attachment's window.
    public func removeHostBlocks(
        olderThan cutoff: Int64, limit: Int, unforwarded: Unforwarded = .remove, keepingUnreadBy readers: [String] = [],
        keepingAttached: Bool = false
    ) async throws -> Int {
        try await write { context in
            let connection = context.connection
            let acknowledged = unforwarded == .remove ? Int64.max : try Self.metaValue("forward_acked", connection) ?? 0
            // A reader with no cursor yet starts after what is committed now: it keeps nothing.
            let unread = try readers.compactMap { try Self.metaValue("cursor:" + $0, connection) }.min() ?? Int64.max
            func outsideWindows(_ max: String, _ min: String) -> String {
                guard keepingAttached else { return "" }
                return """
                    AND NOT EXISTS (SELECT 1 FROM attachments a
                        WHERE a.attached_ns <= \(max) AND (a.detached_ns IS NULL OR a.detached_ns >= \(min)))
                    """
            }
            // Each removed row: the first and last sequence number of its points (a tick holds
            // one a point).
            let selects = [
                """
                SELECT b.seq, b.seq FROM series s JOIN metric_blocks b ON b.series_id = s.id
                WHERE s.parent_id = ? AND b.wallclock_max < ? AND b.seq <= ? \(outsideWindows("b.wallclock_max", "b.wallclock_min")) LIMIT ?
                """,
                """
                SELECT t.seq, t.last_seq FROM series_sets ss JOIN ticks t ON t.set_id = ss.id
                WHERE ss.parent_id = ? AND t.wallclock < ? AND t.last_seq <= ? \(outsideWindows("t.wallclock", "t.wallclock")) LIMIT ?
                """,
            ]
            // Removing ticks in a job of its own stores the sequence counter, which their rows no
            // longer tell (Store.committedSequence).
            let deletes = ["DELETE FROM metric_blocks WHERE seq = ?", "DELETE FROM ticks WHERE seq = ?"]
            var removed: [(first: Int64, last: Int64)] = []
            for (sql, deleteSQL) in zip(selects, deletes) where removed.count < limit {
                let select = try connection.statement(sql)
                select.bind([Store.hostID, cutoff, min(unforwarded == .keep ? acknowledged : Int64.max, unread), Int64(limit - removed.count)])
                var rows: [(first: Int64, last: Int64)] = []
                while try select.step() { rows.append((select.int64(0), select.int64(1))) }
                select.reset()
                let delete = try connection.statement(deleteSQL)
                for row in rows {
                    delete.bind(1, row.first)
                    try delete.run()
                }
                removed += rows
            }
            // How far removal reached: an upstream that loses what it acknowledged (restored from
            // a backup) is told that what it lost up to here is gone (`recordLostRange`).
            if let last = removed.map(\.last).max(), last > (try Self.metaValue("removed_through", connection) ?? 0) {
                try Self.setMeta("removed_through", last, connection)
            }
            let unacknowledged = removed.filter { $0.last > acknowledged }.map { (max($0.first, acknowledged + 1), $0.last) }
            if let first = unacknowledged.map(\.0).min(), let last = unacknowledged.map(\.1).max() {
                let skip = try connection.statement("""
                    INSERT INTO forward_skips (through_seq, from_seq, records, reason) VALUES (?, ?, ?, ?)
                    ON CONFLICT (through_seq) DO UPDATE SET records = records + excluded.records,
                        from_seq = min(from_seq, excluded.from_seq)
                    """)
                let records = unacknowledged.reduce(Int64(0)) { $0 + $1.1 - $1.0 + 1 }
                skip.bind([last, first, records, "removed by --max-db-size before the upstream acknowledged them"])
                try skip.run()
            }
            return removed.count
        }
    }

    /// From the newest point of the oldest host block to the newest host point: where removing
    /// starts, and how far the points go. Asked of each series' first and last entry in the
    /// (series, wallclock) index: a min over the join would read every host block's entry, and
    /// shrinking to a size asks this once a step.
    public func hostWallclocks() async throws -> ClosedRange<Int64>? {
        try await read { connection in
            let statement = try connection.statement("""
                SELECT min(first), max(last) FROM (
                    SELECT (SELECT wallclock_max FROM metric_blocks WHERE series_id = s.id ORDER BY wallclock_max LIMIT 1) AS first,
                        (SELECT wallclock_max FROM metric_blocks WHERE series_id = s.id ORDER BY wallclock_max DESC LIMIT 1) AS last
                    FROM series s WHERE s.parent_id = ?1
                    UNION ALL
                    SELECT min(t.wallclock), max(t.wallclock) FROM series_sets ss JOIN ticks t ON t.set_id = ss.id WHERE ss.parent_id = ?1)
                """)
            statement.bind(1, Store.hostID)
            defer { statement.reset() }
            guard try statement.step(), let first = statement.optionalInt64(0), let last = statement.optionalInt64(1) else { return nil }
            return first...max(first, last)
        }
    }
}

private func fileSize(_ path: String) -> Int64 {
    var info = stat()
    return stat(path, &info) == 0 ? Int64(info.st_size) : 0
}
