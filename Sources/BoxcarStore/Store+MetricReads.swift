import BoxcarModel

/// Reading series back: the blocks of a parent's series decoded into columns, and the machine's
/// series inside the windows trainers were attached to an experiment.
extension Store {
    /// The parent's series (all, or those named by `keys`), sorted by key, each ordered by step,
    /// then wallclock, then arrival. An experiment that trainers attached to also gets the
    /// machine's series (`system/…`, stored under `host`) for the windows it was attached.
    public func metrics(parentID: String, keys: [String]?) async throws -> [(key: String, columns: MetricColumns)] {
        let result = try await read { connection in
            let kind = try Self.objectKind(parentID, connection: connection)
            guard kind != nil else {
                throw NotFoundError("\(parentID) names no experiment, checkpoint, model, version or file")
            }
            var out = try Self.series(of: parentID, keys: keys, window: nil, connection: connection)
            if kind == "experiment" {
                let windows = try Self.attachmentWindows(experimentID: parentID, connection: connection)
                if !windows.isEmpty {
                    out += try Self.series(of: Store.hostID, keys: keys, window: windows, connection: connection)
                    out.sort { $0.key < $1.key }
                }
            }
            return out
        }
        return result.map { ($0.key, $0.columns) }
    }

    /// The keys of the parent's series, and for an experiment that trainers attached to, those of
    /// the machine's series too (some of which may have no point in its windows), sorted.
    public func metricKeys(parentID: String) async throws -> [String] {
        try await read { connection in
            let kind = try Self.objectKind(parentID, connection: connection)
            guard kind != nil else {
                throw NotFoundError("\(parentID) names no experiment, checkpoint, model, version or file")
            }
            var parents = [parentID]
            if kind == "experiment", try !Self.attachmentWindows(experimentID: parentID, connection: connection).isEmpty {
                parents.append(Store.hostID)
            }
            let statement = try connection.statement("SELECT key FROM series WHERE parent_id = ?")
            var keys: [String] = []
            for parent in parents {
                statement.bind(1, parent)
                while try statement.step() { keys.append(statement.string(0)) }
                statement.reset()
            }
            // An experiment may log a key the machine has too: listed once, read (both) once.
            return Set(keys).sorted()
        }
    }

    /// The parent id of the machine's own series.
    public static let hostID = "host"

    static func series(
        of parentID: String, keys: [String]?, window: [ClosedRange<Int64>]?, connection: Connection
    ) throws -> [SeriesResult] {
        let seriesStatement = try connection.statement("SELECT id, key FROM series WHERE parent_id = ? ORDER BY key")
        seriesStatement.bind(1, parentID)
        var series: [(id: Int64, key: String)] = []
        while try seriesStatement.step() {
            series.append((seriesStatement.int64(0), seriesStatement.string(1)))
        }
        seriesStatement.reset()
        if let keys {
            let wanted = Set(keys)
            series = series.filter { wanted.contains($0.key) }
        }
        let total = try connection.statement(
            "SELECT coalesce(sum(count), 0) FROM metric_blocks WHERE series_id = ?")
        // Blocks that may hold points of the window: their wallclock range overlaps it.
        let blocks = try connection.statement(
            "SELECT data FROM metric_blocks WHERE series_id = ? AND wallclock_max >= ? AND wallclock_min <= ? ORDER BY seq")
        let lower = window?.map(\.lowerBound).min() ?? .min
        let upper = window?.map(\.upperBound).max() ?? .max
        var out: [SeriesResult] = []
        for (id, key) in series {
            var columns = MetricColumns()
            if window == nil {
                // Size the columns once: growing them block by block copies them over and over.
                total.bind(1, id)
                if try total.step() { columns.reserveCapacity(Int(total.int64(0))) }
                total.reset()
            }
            blocks.bind(1, id)
            blocks.bind(2, lower)
            blocks.bind(3, upper)
            while try blocks.step() {
                try blocks.withBlob(0) { try MetricBlock.decode($0, into: &columns) }
            }
            blocks.reset()
            if let window {
                let inside = (0..<columns.count).filter { index in
                    window.contains { $0.contains(columns.wallclocks[index]) }
                }
                columns = columns.selecting(inside)
            }
            // A host series whose points retention removed is not shown.
            if columns.isEmpty { continue }
            columns.sortByStep()
            out.append(SeriesResult(key: key, columns: columns))
        }
        return out
    }

    /// The windows during which processes were attached to the experiment; an open one ends now.
    static func attachmentWindows(experimentID: String, connection: Connection) throws -> [ClosedRange<Int64>] {
        let statement = try connection.statement(
            "SELECT attached_ns, detached_ns FROM attachments WHERE experiment_id = ?")
        defer { statement.reset() }
        statement.bind(1, experimentID)
        var windows: [ClosedRange<Int64>] = []
        let now = WallClock.now()
        while try statement.step() {
            let start = statement.int64(0)
            let end = statement.optionalInt64(1) ?? now
            if end >= start { windows.append(start...end) }
        }
        return windows
    }

    /// The PIDs attached now, to any experiment: whose processes the sensors follow.
    public func attachedProcesses() async throws -> [(experimentID: String, pid: Int32)] {
        let rows = try await read { connection in
            let statement = try connection.statement(
                "SELECT experiment_id, pid FROM attachments WHERE detached_ns IS NULL ORDER BY seq")
            defer { statement.reset() }
            var out: [AttachedProcess] = []
            while try statement.step() {
                out.append(AttachedProcess(experimentID: statement.string(0), pid: Int32(statement.int64(1))))
            }
            return out
        }
        return rows.map { ($0.experimentID, $0.pid) }
    }

    struct AttachedProcess: Sendable {
        var experimentID: String
        var pid: Int32
    }

    struct SeriesResult: Sendable {
        var key: String
        var columns: MetricColumns
    }
}
