import BoxcarModel
import BoxcarSampling

/// The agent's own health, as `boxcar_…` families: what it took and refused, how its store and
/// its sensors fare, what it costs, and how far behind forwarding is. The sampler metering its
/// own cost, per sensor, is something node_exporter and dcgm-exporter do not publish.
public struct AgentHealth: Sendable {
    public var version: String
    /// Calls by full method name and status code name ("OK", "INVALID_ARGUMENT", …).
    public var calls: [(method: String, code: String, count: Int)] = []
    /// Points by the status they were answered with.
    public var points: [(code: String, count: Int)] = []
    public var queuedWrites: Int = 0
    public var commitLatency = Histogram()
    public var databaseBytes: Int64?
    public var sensors: [SensorHealth] = []
    /// Each upstream's lag: records committed here and not acknowledged, and the oldest's age.
    public var upstreams: [(target: String, connected: Bool, records: Int64, seconds: Double)] = []
    /// Each remote write: samples sent and dropped, failed requests, and its lag.
    public var remoteWrites: [(url: String, sent: Int, dropped: Int, failed: Int, lagSeconds: Double)] = []
    /// A collector's own: the agents forwarding now and how far behind each is, rows and
    /// batches written, PostgreSQL's failures. nil on an agent.
    public var collector: Collector?

    public struct Collector: Sendable {
        public var agents: [(agentID: String, host: String, records: Int64, seconds: Double)]
        public var rows: Int
        public var batches: Int
        public var postgresErrors: Int

        public init(agents: [(agentID: String, host: String, records: Int64, seconds: Double)], rows: Int, batches: Int, postgresErrors: Int) {
            self.agents = agents
            self.rows = rows
            self.batches = batches
            self.postgresErrors = postgresErrors
        }
    }

    /// The agent process's own CPU time and resident memory.
    public var cpuSeconds: Double?
    public var residentBytes: Double?

    public init(version: String) {
        self.version = version
    }

    static let build = Family("boxcar_build", .info, help: "The agent's version")
    static let calls = Family("boxcar_calls", .counter, help: "gRPC calls answered, by method and status code")
    static let points = Family("boxcar_points", .counter, help: "Metric points accepted (code OK, once committed) and refused, by status code")
    static let queued = Family("boxcar_store_queued_writes", .gauge, help: "Writes waiting for the store's writer (the ingest queue's depth)")
    static let commit = Family("boxcar_store_commit_seconds", .histogram, unit: "seconds", help: "How long each group commit took, begin to commit")
    static let database = Family("boxcar_store_database_bytes", .gauge, unit: "bytes", help: "The database file and its write-ahead log on disk")
    static let sensorErrors = Family("boxcar_sensor_errors", .counter, help: "Sensor calls that failed")
    static let sensorHangs = Family("boxcar_sensor_hangs", .counter, help: "Sensor calls that did not answer within the deadline")
    static let sensorCPU = Family("boxcar_sensor_cpu_seconds", .counter, unit: "seconds", help: "CPU time the sensor's calls took")
    static let sensorTick = Family("boxcar_sensor_tick_cpu_seconds", .gauge, unit: "seconds", help: "CPU time the sensor's last call took")
    static let upstreamRecords = Family("boxcar_upstream_lag_records", .gauge, help: "Records committed here that the upstream has not acknowledged")
    static let upstreamSeconds = Family("boxcar_upstream_lag_seconds", .gauge, unit: "seconds", help: "How long the oldest record the upstream has not acknowledged has waited")
    static let upstreamConnected = Family("boxcar_upstream_connected", .gauge, help: "1 while the agent is connected to the upstream")
    static let remoteSamples = Family("boxcar_remote_write_samples", .counter, help: "Samples remote write sent (outcome sent) and the receiver refused for good (outcome dropped)")
    static let remoteFailures = Family("boxcar_remote_write_failed_requests", .counter, help: "Remote-write requests that failed and were tried again")
    static let remoteLag = Family("boxcar_remote_write_lag_seconds", .gauge, unit: "seconds", help: "How long the oldest sample remote write has not delivered has waited")
    static let collectorAgents = Family("boxcar_collector_agents_connected", .gauge, help: "Agents forwarding to this collector now")
    static let collectorLagRecords = Family("boxcar_collector_agent_lag_records", .gauge, help: "Records the agent committed that it had not yet forwarded, as of its last batch")
    static let collectorLagSeconds = Family("boxcar_collector_agent_lag_seconds", .gauge, unit: "seconds", help: "How long the agent's oldest record not yet written here had waited, as of its last batch")
    static let collectorRows = Family("boxcar_collector_rows_written", .counter, help: "Records written into PostgreSQL")
    static let collectorBatches = Family("boxcar_collector_batches_written", .counter, help: "Forwarded batches committed into PostgreSQL")
    static let collectorErrors = Family("boxcar_collector_postgres_errors", .counter, help: "Writes PostgreSQL failed (the agents send them again)")
    static let cpu = Family("boxcar_agent_cpu_seconds", .counter, unit: "seconds", help: "CPU time the agent process used")
    static let resident = Family("boxcar_agent_resident_memory_bytes", .gauge, unit: "bytes", help: "The agent process's resident memory")

    /// Every family this page may hold, for the README and the name checks.
    public static let families = [
        build, calls, points, queued, commit, database, sensorErrors, sensorHangs, sensorCPU, sensorTick,
        upstreamRecords, upstreamSeconds, upstreamConnected, remoteSamples, remoteFailures, remoteLag, collectorAgents,
        collectorLagRecords, collectorLagSeconds, collectorRows, collectorBatches, collectorErrors, cpu, resident,
    ]

    public func write(into writer: inout ExpositionWriter) {
        writer.family(Self.build)
        writer.sample(Self.build, labels: [("version", version)], value: 1)
        if let cpuSeconds {
            writer.family(Self.cpu)
            writer.sample(Self.cpu, value: cpuSeconds)
        }
        if let residentBytes {
            writer.family(Self.resident)
            writer.sample(Self.resident, value: residentBytes)
        }
        writer.family(Self.calls)
        for call in calls { writer.sample(Self.calls, labels: [("method", call.method), ("code", call.code)], value: Double(call.count)) }
        writer.family(Self.points)
        for point in points { writer.sample(Self.points, labels: [("code", point.code)], value: Double(point.count)) }
        if let collector {
            write(collector, into: &writer)
            return
        }
        writer.family(Self.queued)
        writer.sample(Self.queued, value: Double(queuedWrites))
        writer.family(Self.commit)
        for bucket in commitLatency.cumulative {
            let bound = bucket.bound.isInfinite ? "+Inf" : "\(bucket.bound)"
            writer.sample(Self.commit, suffix: "_bucket", labels: [("le", bound)], value: Double(bucket.count))
        }
        writer.sample(Self.commit, suffix: "_sum", value: commitLatency.sum)
        writer.sample(Self.commit, suffix: "_count", value: Double(commitLatency.count))
        if let databaseBytes {
            writer.family(Self.database)
            writer.sample(Self.database, value: Double(databaseBytes))
        }
        if !sensors.isEmpty {
            for (family, value) in [
                (Self.sensorErrors, { (sensor: SensorHealth) in Double(sensor.errors) }),
                (Self.sensorHangs, { Double($0.hangs) }), (Self.sensorCPU, { $0.cpuSeconds }), (Self.sensorTick, { $0.lastCPUSeconds }),
            ] {
                writer.family(family)
                for sensor in sensors { writer.sample(family, labels: [("sensor", sensor.name)], value: value(sensor)) }
            }
        }
        if !upstreams.isEmpty {
            for (family, value) in [
                (Self.upstreamConnected, { (upstream: (target: String, connected: Bool, records: Int64, seconds: Double)) in upstream.connected ? 1.0 : 0 }),
                (Self.upstreamRecords, { Double($0.records) }), (Self.upstreamSeconds, { $0.seconds }),
            ] {
                writer.family(family)
                for upstream in upstreams { writer.sample(family, labels: [("upstream", upstream.target)], value: value(upstream)) }
            }
        }
        writeRemoteWrites(into: &writer)
    }

    private func write(_ collector: Collector, into writer: inout ExpositionWriter) {
        writer.family(Self.collectorAgents)
        writer.sample(Self.collectorAgents, value: Double(collector.agents.count))
        for (family, value) in [
            (Self.collectorLagRecords, { (agent: (agentID: String, host: String, records: Int64, seconds: Double)) in Double(agent.records) }),
            (Self.collectorLagSeconds, { $0.seconds }),
        ] {
            writer.family(family)
            for agent in collector.agents {
                writer.sample(family, labels: [("agent_id", agent.agentID), ("host", agent.host)], value: value(agent))
            }
        }
        for (family, value) in [
            (Self.collectorRows, collector.rows), (Self.collectorBatches, collector.batches), (Self.collectorErrors, collector.postgresErrors),
        ] {
            writer.family(family)
            writer.sample(family, value: Double(value))
        }
    }

    private func writeRemoteWrites(into writer: inout ExpositionWriter) {
        if !remoteWrites.isEmpty {
            writer.family(Self.remoteSamples)
            for remote in remoteWrites {
                writer.sample(Self.remoteSamples, labels: [("outcome", "sent"), ("url", remote.url)], value: Double(remote.sent))
                writer.sample(Self.remoteSamples, labels: [("outcome", "dropped"), ("url", remote.url)], value: Double(remote.dropped))
            }
            writer.family(Self.remoteFailures)
            for remote in remoteWrites { writer.sample(Self.remoteFailures, labels: [("url", remote.url)], value: Double(remote.failed)) }
            writer.family(Self.remoteLag)
            for remote in remoteWrites { writer.sample(Self.remoteLag, labels: [("url", remote.url)], value: remote.lagSeconds) }
        }
    }
}
