import BoxcarModel

/// Reading series back: the blocks of a parent's series decoded into columns, and the machine's
/// series inside the windows trainers were attached to an experiment.
extension Store {
    /// The parent's series (all, or those named by `keys`), sorted by key, each ordered by step,
    /// then wallclock, then arrival, with the points within `range` (only the blocks that reach
    /// into it are read). An experiment that trainers attached to also gets the machine's series
    /// (`system/…`, stored under `host`) for the windows it was attached.
    public func metrics(parentID: String, keys: [String]?, range: MetricRange?) async throws -> [(key: String, columns: MetricColumns)] {
        let result = try await read { connection in
            let kind = try Self.objectKind(parentID, connection: connection)
            guard kind != nil else {
                throw NotFoundError("\(parentID) names no experiment, checkpoint, model, version or file")
            }
            var out = try Self.series(of: parentID, keys: keys, window: nil, range: range, connection: connection)
            if kind == "experiment" {
                let windows = try Self.attachmentWindows(experimentID: parentID, connection: connection)
                if !windows.isEmpty {
                    out += try Self.series(of: Store.hostID, keys: keys, window: windows, range: range, connection: connection)
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

    /// The first and last step of the parent's series `key` (by its blocks: for a machine series
    /// of an experiment, those that reach into its attachment windows); nil when it has none.
    public func stepExtent(parentID: String, key: String) async throws -> ClosedRange<UInt64>? {
        try await read { connection in
            var parents = [parentID]
            var lower = Int64.min
            var upper = Int64.max
            let windows = try Self.attachmentWindows(experimentID: parentID, connection: connection)
            if !windows.isEmpty {
                parents.append(Store.hostID)
                lower = windows.map(\.lowerBound).min()!
                upper = windows.map(\.upperBound).max()!
            }
            // Steps past Int64.max are stored negative: read as unsigned, they sort last.
            let statement = try connection.statement("""
                SELECT b.step_min, b.step_max FROM series s JOIN metric_blocks b ON b.series_id = s.id
                WHERE s.parent_id = ? AND s.key = ? AND b.wallclock_max >= ? AND b.wallclock_min <= ?
                """)
            defer { statement.reset() }
            let seriesID = try connection.statement("SELECT id FROM series WHERE parent_id = ? AND key = ?")
            defer { seriesID.reset() }
            var extent: ClosedRange<UInt64>?
            func include(_ low: Int64, _ high: Int64) {
                // A block with steps on both sides of 2^63 has a signed minimum past it and a
                // signed maximum below it: its true bounds are not kept, and all steps are taken
                // for it.
                let (low, high) = (UInt64(bitPattern: low), UInt64(bitPattern: high))
                let block = low >= 1 << 63 && high < 1 << 63 ? 0...UInt64.max : low...high
                extent = extent.map { min($0.lowerBound, block.lowerBound)...max($0.upperBound, block.upperBound) } ?? block
            }
            for (index, parent) in parents.enumerated() {
                let (from, to) = index == 0 ? (Int64.min, Int64.max) : (lower, upper)
                statement.bind([parent, key, from, to])
                while try statement.step() { include(statement.int64(0), statement.int64(1)) }
                statement.reset()
                seriesID.bind([parent, key])
                if try seriesID.step(), let head = try Self.headStepBounds(
                    parentID: parent, seriesID: seriesID.int64(0), lower: from, upper: to, connection: connection)
                {
                    include(head.min, head.max)
                }
                seriesID.reset()
            }
            return extent
        }
    }

    /// The parent id of the machine's own series.
    public static let hostID = "host"

    static func series(
        of parentID: String, keys: [String]?, window: [ClosedRange<Int64>]?, range: MetricRange? = nil, connection: Connection
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
        // Blocks that may hold points of the window and the range: their wallclock and step ranges
        // overlap them. Steps are stored as signed integers: a block with a step past Int64.max has
        // a negative step_min, and is always read.
        let blocks = try connection.statement("""
            SELECT data FROM metric_blocks WHERE series_id = ? AND wallclock_max >= ? AND wallclock_min <= ?
              AND (step_min < 0 OR (step_max >= ? AND step_min <= ?)) ORDER BY seq
            """)
        var lower = window?.map(\.lowerBound).min() ?? .min
        var upper = window?.map(\.upperBound).max() ?? .max
        var steps: (from: Int64, to: Int64) = (.min, .max)
        if let range {
            switch range.axis {
            case .wallclock:
                lower = max(lower, range.from)
                upper = min(upper, range.to)
            case .step:
                steps = (range.from, range.to)
            }
        }
        // The points still in the head (not compacted yet), read once for all the series.
        let head = try headPoints(
            parentID: parentID, seriesIDs: Set(series.map(\.id)), lower: lower, upper: upper, connection: connection)
        var out: [SeriesResult] = []
        for (id, key) in series {
            var columns = MetricColumns()
            if window == nil && range == nil {
                // Size the columns once: growing them block by block copies them over and over.
                total.bind(1, id)
                if try total.step() { columns.reserveCapacity(Int(total.int64(0))) }
                total.reset()
            }
            blocks.bind(1, id)
            blocks.bind(2, lower)
            blocks.bind(3, upper)
            blocks.bind(4, steps.from)
            blocks.bind(5, steps.to)
            while try blocks.step() {
                try blocks.withBlob(0) { try MetricBlock.decode($0, into: &columns) }
            }
            blocks.reset()
            if let points = head[id] { columns.append(contentsOf: points) }
            if let window {
                let inside = (0..<columns.count).filter { index in
                    window.contains { $0.contains(columns.wallclocks[index]) }
                }
                columns = columns.selecting(inside)
            }
            if let range { columns = range.filter(columns) }
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
