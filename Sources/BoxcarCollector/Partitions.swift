import Foundation
import Logging
import PostgresNIO

/// Points and events are partitioned by UTC day of their wallclock (nanoseconds): a partition
/// per day, `metric_blocks_20261201` for [that midnight, the next), made a day ahead; the default
/// partition takes any time outside them (a clock far off, a backfill of last year), so no time
/// an agent accepted is refused. `--retention` drops whole day partitions past it, and deletes the
/// default partitions' rows past it.
enum Partitions {
    static let tables = ["metric_blocks", "events"]
    static let day: Int64 = 86_400 * 1_000_000_000

    /// Makes the partitions of yesterday, today and tomorrow where missing. One that the default
    /// partition already holds rows for cannot be made (PostgreSQL would have to move them); its
    /// rows stay in the default partition, and that is logged.
    static func prepare(_ client: PostgresClient, now: Int64, logger: Logger) async throws {
        let today = now - ((now % day) + day) % day
        for table in tables {
            for start in [today - day, today, today + day] {
                let name = "\(table)_\(dayName(start))"
                do {
                    try await client.query(PostgresQuery(unsafeSQL: """
                        CREATE TABLE IF NOT EXISTS boxcar.\(name) PARTITION OF boxcar.\(table)
                        FOR VALUES FROM (\(start)) TO (\(start + day))
                        """), logger: logger)
                } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23514" {
                    logger.notice("the default partition holds rows of \(name); they stay there", metadata: ["table": "\(table)"])
                }
            }
        }
    }

    /// Drops the day partitions that end before `cutoff`; returns their names.
    static func dropOlder(than cutoff: Int64, _ client: PostgresClient, logger: Logger) async throws -> [String] {
        var dropped: [String] = []
        for table in tables {
            let rows = try await client.query("""
                SELECT c.relname FROM pg_inherits i
                JOIN pg_class c ON c.oid = i.inhrelid
                JOIN pg_class p ON p.oid = i.inhparent
                JOIN pg_namespace n ON n.oid = p.relnamespace
                WHERE n.nspname = 'boxcar' AND p.relname = \(table)
                """, logger: logger)
            var names: [String] = []
            for try await name in rows.decode(String.self) { names.append(name) }
            for name in names {
                guard let start = dayStart(name, table: table), start + day <= cutoff else { continue }
                try await client.query(PostgresQuery(unsafeSQL: "DROP TABLE boxcar.\(name)"), logger: logger)
                dropped.append(name)
            }
        }
        return dropped
    }

    /// Deletes the rows of the default partitions that end before `cutoff` (they are not in a day
    /// partition to drop); returns how many.
    static func deleteOlderDefaults(than cutoff: Int64, _ client: PostgresClient, logger: Logger) async throws -> Int {
        var deleted = 0
        for (table, end) in [("metric_blocks", "wallclock_max"), ("events", "wallclock_ns")] {
            let rows = try await client.query(PostgresQuery(
                unsafeSQL: "WITH gone AS (DELETE FROM boxcar.\(table)_default WHERE \(end) < $1 RETURNING 1) SELECT count(*) FROM gone",
                binds: { var binds = PostgresBindings(); binds.append(cutoff); return binds }()), logger: logger)
            for try await count in rows.decode(Int.self) { deleted += count }
        }
        return deleted
    }

    /// "20261201" for a time on that UTC day.
    static func dayName(_ nanoseconds: Int64) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let date = Date(timeIntervalSince1970: Double(nanoseconds / 1_000_000_000))
        let parts = calendar.dateComponents([.year, .month, .day], from: date)
        return String(format: "%04d%02d%02d", parts.year!, parts.month!, parts.day!)
    }

    /// The start of the day a partition's name says, or nil for the default one.
    static func dayStart(_ name: String, table: String) -> Int64? {
        let suffix = name.dropFirst(table.count + 1)
        guard name.hasPrefix(table + "_"), suffix.count == 8, let digits = Int(suffix) else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let components = DateComponents(year: digits / 10_000, month: digits / 100 % 100, day: digits % 100)
        guard let date = calendar.date(from: components) else { return nil }
        return Int64(date.timeIntervalSince1970) * 1_000_000_000
    }
}
