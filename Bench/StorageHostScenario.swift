import BoxcarClient
import BoxcarModel
import BoxcarSampling
import BoxcarSensors
import BoxcarStore
import Foundation
import Logging

// storage-host: the machine's series as the sampler stores them (a head row a tick, compacted
// into a block per series), replaying values recorded from a real agent, and what they cost.

/// Values the sampler of a real agent read, a row a tick (Bench/Traces/record.py: the first line
/// the keys, then a line of values a tick, tab-separated, empty where the tick had none), replayed
/// in a loop.
struct HostTrace {
    var keys: [String]
    /// nil: the tick had no value for the key (a sensor on a slower cadence).
    var rows: [[Double?]]

    static func load(path: String) throws -> HostTrace {
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        guard let header = lines.first else { throw BenchError("\(path) is empty") }
        // A trace recorded before the machine series took OpenTelemetry's names reads renamed, as
        // the agent's migration renames its database.
        let keys = header.split(separator: "\t").map { SeriesRenames.current(String($0)) ?? String($0) }
        let rows = try lines.dropFirst().map { line in
            let values = line.split(separator: "\t", omittingEmptySubsequences: false).map { Double($0) }
            guard values.count == keys.count else { throw BenchError("\(path): a row without a place for each key") }
            return values
        }
        guard rows.count > 1 else { throw BenchError("\(path) holds no ticks") }
        return HostTrace(keys: keys, rows: rows)
    }

    enum Kind: String, CaseIterable {
        case constant, slow, noisy
    }

    /// Constant: one value throughout; slow: changes at under a tenth of the ticks; noisy: more.
    func kind(of index: Int) -> Kind {
        let values = rows.compactMap { $0[index] }
        let changes = zip(values, values.dropFirst()).filter { $0.bitPattern != $1.bitPattern }.count
        if changes == 0 { return .constant }
        return changes * 10 < values.count ? .slow : .noisy
    }
}

/// Which series a storage-host run writes, and where in the trace each takes its values from.
struct HostLayout {
    var name: String
    var keys: [String] = []
    /// The trace's column each key replays, and how many ticks further on in the trace it starts
    /// (so that series replaying one column are not in step).
    var sources: [(column: Int, offset: Int)] = []

    /// The trace's own series.
    init(trace: HostTrace) {
        name = "trace"
        keys = trace.keys
        sources = trace.keys.indices.map { ($0, 0) }
    }

    /// `keys` (a large node's series), each replaying the trace's series of the same name whose
    /// labels it shares most (CPU 7's user share replays a CPU's user share, an NVMe disk's
    /// writes the traced disk's writes); those of a name the trace lacks are left out.
    init(name: String, keys wanted: [String], trace: HostTrace) {
        self.name = name
        let traced = trace.keys.map(Self.parse)
        for (index, key) in wanted.enumerated() {
            let (metric, labels) = Self.parse(key)
            let best = traced.indices.filter { traced[$0].name == metric }.max { a, b in
                Self.likeness(labels, traced[a].labels) < Self.likeness(labels, traced[b].labels)
            } ?? Self.standIns[metric].flatMap { trace.keys.firstIndex(of: "system/" + $0) }
            guard let best else { continue }
            keys.append(key)
            sources.append((best, index * 37))
        }
    }

    /// No real GPU's values are recorded (this machine has none): each of a GPU's series replays
    /// the traced series that moves most like it on a training node: a busy share, bytes in use,
    /// a rate, a temperature or clock that drifts, a limit or an error count that stays.
    static let standIns: [String: String] = {
        let share = #"system.cpu.utilization{cpu.mode="user"}"#
        let used = #"system.memory.usage{system.memory.state="used"}"#
        let drifts = "system.cpu.load_average.15m"
        let stays = "system.memory.limit"
        let zero = #"system.network.errors.rate{network.interface.name="eth0",network.io.direction="receive"}"#
        let pairs = [
            ("hw.gpu.utilization", share), ("hw.gpu.memory.activity", share),
            ("hw.gpu.memory.usage", used), ("hw.gpu.mig.memory.usage", used), ("hw.gpu.process.memory.usage", used),
            ("hw.gpu.memory.limit", stays), ("hw.gpu.mig.memory.limit", stays), ("hw.power.limit", stays),
            ("hw.gpu.memory.reserved", stays), ("hw.gpu.mig.memory.reserved", stays), ("hw.gpu.mig.mode", stays),
            ("hw.power", #"system.network.io.rate{network.interface.name="eth0",network.io.direction="receive"}"#),
            ("hw.gpu.io.rate", #"system.disk.io.rate{disk.io.direction="write",system.device="vda"}"#),
            ("hw.temperature", "system.cpu.load_average.1m"), ("hw.gpu.clock", drifts), ("hw.fan.speed_ratio", drifts),
            ("hw.gpu.clocks_event", zero), ("hw.errors", zero),
        ]
        return Dictionary(uniqueKeysWithValues: pairs.map { ("system/" + $0.0, $0.1) })
    }()

    static func likeness(_ labels: [String: String], _ other: [String: String]) -> Int {
        labels.filter { other[$0.key] == $0.value }.count * 2 + (Set(labels.keys) == Set(other.keys) ? 1 : 0)
    }

    /// `system/name{a="1",b="2"}` as its name and labels (values without quotes or commas).
    static func parse(_ key: String) -> (name: String, labels: [String: String]) {
        guard let brace = key.firstIndex(of: "{") else { return (key, [:]) }
        var labels: [String: String] = [:]
        for pair in key[key.index(after: brace)..<key.index(before: key.endIndex)].split(separator: "\",") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { labels[String(parts[0]).trimmingCharacters(in: [","])] = parts[1].trimmingCharacters(in: ["\""]) }
        }
        return (String(key[..<brace]), labels)
    }
}

extension BoxcarBench {
    /// Writes `hostTicks` ticks a second apart through the store's tick path, compacted as the
    /// agent's compaction does (every 150 ticks, 600 ticks a block): the trace's series, then the
    /// host series of the large training node (sensors-large's), each replaying a traced one.
    func storageHost(directory: String) async throws {
        let trace = try HostTrace.load(path: hostTrace)
        try await storageHost(trace: trace, layout: HostLayout(trace: trace), directory: directory)
        try await storageHost(trace: trace, layout: HostLayout(name: "large-node", keys: try largeNodeHostKeys(directory: directory), trace: trace), directory: directory)
    }

    /// The series the sampler stores of the large node (Scripts/fixtures/large-node.py, and 8 GPUs
    /// of the fake NVML library, MIG on two, as sensors-large has): its sensors' readings over two
    /// ticks, counters apart.
    func largeNodeHostKeys(directory: String) throws -> [String] {
        let node = directory + "/storage-large-node"
        try writeLargeNode(to: node)
        var counters = try LargeNodeCounters(root: node)
        var keys: Set<String> = []
        let sensors = hostSensors(procRoot: node + "/proc", sysRoot: node + "/sys")
        let library = directory + "/storage-large-node-nvml"
        try FileManager.default.createDirectory(atPath: library, withIntermediateDirectories: true)
        let nvidia = try NVIDIAGPUSensor(library: try NVMLLibrary.load(path: try fakeNVML(
            directory: library, gpus: 8, mig: [6, 7], processes: [Int(getpid())])))
        for tick in 0..<2 {
            try counters.advance()
            for sensor in sensors {
                let readings = (try? sensor.sample(elapsed: tick == 0 ? nil : .seconds(1))) ?? []
                keys.formUnion(readings.filter { !$0.isCumulative }.map(\.seriesKey))
            }
            keys.formUnion(nvidia.sample(processes: [getpid()]).filter { !$0.isCumulative }.map(\.seriesKey))
        }
        return keys.sorted()
    }

    private func storageHost(trace: HostTrace, layout: HostLayout, directory: String) async throws {
        // The store is released on return from writing (its lock on the database with it), so
        // that an agent can open the database for the reads through the API.
        var (fields, home, queries, day) = try await writeHost(trace: trace, layout: layout, directory: directory)
        let api = try await queryHostThroughAPI(home: home, queries: queries, day: day)
        fields["api_query_24h_one_series_ms"] = api[0].whole
        if api.count > 1 {
            fields["api_query_24h_one_gpu_ms"] = api[1].whole
            fields["api_query_24h_one_gpu_thinned_ms"] = api[1].thinned
        }
        report(fields)
    }

    /// The ticks written, compacted and read back from the store: the figures, where the database
    /// is, and the reads to make again through the API (keys and the points the store gave).
    private func writeHost(trace: HostTrace, layout: HostLayout, directory: String) async throws
        -> (fields: [String: Any], home: String, queries: [(keys: [String], points: Int)], day: MetricRange)
    {
        // Where an agent started on it takes its database (AgentProcess), for the reads through the API.
        let home = directory + "/storage-host-\(layout.name)"
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        let store = try Store.open(path: home + "/boxcar.db")
        let keys = layout.keys
        let kinds = layout.sources.map { trace.kind(of: $0.column) }
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let compaction = Compaction(store: store, sampleInterval: .seconds(1), readers: .init(), logger: logger)
        // Ticks from now on, a second apart, stamped on the schedule as the sampler stamps them.
        let start = WallClock.now() / 1_000_000 * 1_000_000
        var points = 0
        var perKind: [HostTrace.Kind: Int] = [:]
        var writeCPU = 0.0
        var writerThreadCPU = Duration.zero
        // The writer's CPU over each run of `segment` ticks (each holding a few of SQLite's
        // checkpoints), whose median says what a tick costs with less of this shared machine's
        // noise than the mean over the whole run.
        let segment = 500
        var segments: [Double] = []
        var inSegment = Duration.zero
        var compactCPU = 0.0
        var withHead = 0.0
        let wall = ContinuousClock.now
        for n in 0..<hostTicks {
            var tickKeys: [String] = []
            var values: [Double] = []
            for (index, source) in layout.sources.enumerated() {
                guard let value = trace.rows[(n + source.offset) % trace.rows.count][source.column] else { continue }
                tickKeys.append(keys[index])
                values.append(value)
                perKind[kinds[index], default: 0] += 1
            }
            points += values.count
            let wallclock = start + Int64(n) * 1_000_000_000
            let before = cpuSeconds()
            let writerBefore = store.writerCPUTime
            try await store.appendTick(Store.Tick(
                parentID: Store.hostID, step: UInt64(wallclock / 1_000_000), wallclock: wallclock, keys: tickKeys, values: values))
            writeCPU += cpuSeconds() - before
            let writer = store.writerCPUTime - writerBefore
            writerThreadCPU += writer
            inSegment += writer
            if (n + 1) % segment == 0 {
                segments.append(inSegment.seconds / Double(segment) * 1e6)
                inSegment = .zero
            }
            if (n + 1) % 150 == 0 {
                // The head at its largest is just before compaction runs.
                if n + 1 >= hostTicks / 2 {
                    let used = try await store.size().usedBytes
                    withHead = max(withHead, Double(used) / Double(points))
                }
                let before = cpuSeconds()
                try await compaction.compactAll()
                compactCPU += cpuSeconds() - before
            }
        }
        let seconds = (ContinuousClock.now - wall).seconds
        let used = try await store.size().usedBytes
        // query-host: the last 24 hours of one noisy series, of 75, and of every series of the GPU
        // that has most (a MIG one's instances included), read from the store as the API's reads
        // do; median of 5.
        let end = start + Int64(hostTicks - 1) * 1_000_000_000
        let day = MetricRange(from: end - 86_400 * 1_000_000_000, to: end, axis: .wallclock)
        let noisy = keys[kinds.firstIndex(of: .noisy) ?? 0]
        let someKeys = Array(keys.suffix(75))
        func timed(_ keys: [String]) async throws -> (ms: Double, points: Int) {
            var times: [Double] = []
            var points = 0
            for _ in 0..<5 {
                let clock = ContinuousClock.now
                let series = try await store.metrics(parentID: Store.hostID, keys: keys, range: day)
                times.append((ContinuousClock.now - clock).seconds * 1000)
                points = series.reduce(0) { $0 + $1.columns.count }
            }
            return (median(times), points)
        }
        let one = try await timed([noisy])
        let all = try await timed(someKeys)
        let gpuKeys = Dictionary(grouping: keys.filter { $0.hasPrefix("system/hw.") }) { HostLayout.parse($0).labels["index"] ?? "" }
            .values.max { $0.count < $1.count } ?? []
        let gpu = gpuKeys.isEmpty ? nil : try await timed(gpuKeys)
        let (blocks, dataBytes, compacted) = try await blockBytes(store: store, keys: keys, kinds: kinds)
        await store.close()
        let compactedPoints = compacted.values.reduce(0, +)
        var fields: [String: Any] = [
            "scenario": "storage-host", "layout": layout.name, "series": keys.count, "ticks": hostTicks, "points": points, "seconds": seconds,
            "blocks": blocks, "compacted_points": compactedPoints,
            "bytes_per_point": Double(used) / Double(points),
            "bytes_per_point_with_head_at_largest": withHead,
            "database_bytes_per_day_at_1s": Double(used) / Double(points) * Double(keys.count) * 86_400,
            "writer_cpu_us_per_tick": writerThreadCPU.seconds / Double(hostTicks) * 1e6,
            "tick_path_cpu_us_per_tick": writeCPU / Double(hostTicks) * 1e6,
            "compaction_cpu_us_per_tick": compactCPU / Double(hostTicks) * 1e6,
            "query_24h_one_series_ms": one.ms, "query_24h_one_series_points": one.points,
            "query_24h_75_series_ms": all.ms, "query_24h_75_series_points": all.points,
        ]
        // Runs shorter than a stretch have nothing compacted, and none to take the median of
        // (0 / 0 is no number JSON can carry).
        if compactedPoints > 0 { fields["block_data_bytes_per_point"] = dataBytes.values.reduce(0, +) / Double(compactedPoints) }
        if !segments.isEmpty { fields["writer_cpu_us_per_tick_median_of_\(segment)"] = median(segments) }
        if let gpu {
            fields["query_24h_one_gpu_series"] = gpuKeys.count
            fields["query_24h_one_gpu_ms"] = gpu.ms
            fields["query_24h_one_gpu_points"] = gpu.points
        }
        for kind in HostTrace.Kind.allCases {
            fields["series_\(kind.rawValue)"] = kinds.filter { $0 == kind }.count
            if let count = compacted[kind], count > 0 {
                fields["block_data_bytes_per_point_\(kind.rawValue)"] = (dataBytes[kind] ?? 0) / Double(count)
            }
        }
        return (fields, home, [([noisy], one.points)] + (gpu.map { [(gpuKeys, $0.points)] } ?? []), day)
    }

    /// query-host through the agent's API: an agent started on the database just written (sampling
    /// off), QueryMetrics of the last 24 hours of each set of keys, answered whole (as many points
    /// as the store read), and thinned to 1,000 points a series as a chart asks; the median of 5
    /// of each, in milliseconds.
    private func queryHostThroughAPI(
        home: String, queries: [(keys: [String], points: Int)], day: MetricRange
    ) async throws -> [(whole: Double, thinned: Double)] {
        let agent = try AgentProcess.start(directory: home)
        defer { try? agent.stop() }
        try agent.waitUntilAccepting()
        return try await AgentClient.with(.unixSocket(agent.socketPath)) { client in
            var out: [(whole: Double, thinned: Double)] = []
            for (keys, points) in queries {
                var times: (whole: [Double], thinned: [Double]) = ([], [])
                for _ in 0..<5 {
                    for maxPoints in [0, 1000] {
                        let started = ContinuousClock.now
                        let answer = try await client.agent.queryMetrics(.with {
                            $0.parentID = Store.hostID
                            $0.keys = keys
                            $0.from = day.from
                            $0.to = day.to
                            $0.axis = .wallclock
                            $0.maxPoints = UInt32(maxPoints)
                        })
                        let took = (ContinuousClock.now - started).seconds * 1000
                        let answered = answer.series.reduce(0, { $0 + $1.value.count })
                        if maxPoints == 0 {
                            times.whole.append(took)
                            guard answered == points else { throw BenchError("QueryMetrics answered another number of points than the store read") }
                        } else {
                            times.thinned.append(took)
                            guard answered == min(points, 1000 * keys.count) else { throw BenchError("QueryMetrics thinned to another number of points") }
                        }
                    }
                }
                out.append((median(times.whole), median(times.thinned)))
            }
            return out
        }
    }

    /// The compacted blocks, and their data bytes and points by kind of series.
    private func blockBytes(store: Store, keys: [String], kinds: [HostTrace.Kind]) async throws
        -> (Int, [HostTrace.Kind: Double], [HostTrace.Kind: Int])
    {
        let sizes = try await store.blockSizes()
        let kindOf = Dictionary(uniqueKeysWithValues: zip(keys, kinds))
        var bytes: [HostTrace.Kind: Double] = [:]
        var points: [HostTrace.Kind: Int] = [:]
        for series in sizes.series {
            guard let kind = kindOf[series.key] else { continue }
            bytes[kind, default: 0] += Double(series.bytes)
            points[kind, default: 0] += series.points
        }
        return (sizes.blocks, bytes, points)
    }
}
