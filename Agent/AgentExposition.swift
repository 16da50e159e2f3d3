#if canImport(Glibc)
import Glibc
#endif
import BoxcarExposition
import BoxcarForwarding
import BoxcarHTTP
import BoxcarModel
import BoxcarRemoteWrite
import BoxcarSampling
import BoxcarServer
import BoxcarStore
import GRPCCore
import Synchronization

/// What the agent's `--http` endpoints answer: the page of the machine's last tick and of the
/// agent's health, and whether it is ready.
///
/// The machine's part of the page changes once a tick: it is written at the first scrape after a
/// tick and kept for the scrapes until the next (Prometheus and a second scraper, or a person
/// with curl, read the same bytes). The health part is written at every scrape: it is small, and
/// its counters move between ticks.
final class AgentExposition: Sendable {
    let store: Store
    let sampler: Sampler?
    let statistics: CallStatistics
    let forwarder: Forwarder?
    let remoteWriters: [RemoteWriter]
    let version: String
    /// Set once the listeners are bound.
    let serving = Atomic<Bool>(false)
    private let machinePages = Mutex<[ExpositionFormat: (wallclock: Int64, bytes: [UInt8])]>([:])

    init(
        store: Store, sampler: Sampler?, statistics: CallStatistics, forwarder: Forwarder?, remoteWriters: [RemoteWriter],
        version: String
    ) {
        self.store = store
        self.sampler = sampler
        self.statistics = statistics
        self.forwarder = forwarder
        self.remoteWriters = remoteWriters
        self.version = version
    }

    var endpoints: HTTPEndpoints {
        HTTPEndpoints(metrics: { [self] in page($0) }, readiness: { [self] in readiness() })
    }

    func page(_ format: ExpositionFormat) -> [UInt8] {
        var writer = ExpositionWriter(format: format)
        writer.append(written: machinePage(format))
        health().write(into: &writer)
        return writer.finish()
    }

    private func machinePage(_ format: ExpositionFormat) -> [UInt8] {
        guard let snapshot = sampler?.snapshot else { return [] }
        if let kept = machinePages.withLock({ $0[format] }), kept.wallclock == snapshot.wallclock { return kept.bytes }
        var writer = ExpositionWriter(format: format)
        MachinePage.write(snapshot, into: &writer)
        let bytes = writer.bytes
        machinePages.withLock { $0[format] = (snapshot.wallclock, bytes) }
        return bytes
    }

    private func health() -> AgentHealth {
        var health = Self.processHealth(version: version, statistics: statistics)
        health.queuedWrites = store.pendingWrites
        health.commitLatency = store.commitLatency
        health.databaseBytes = store.fileBytes
        health.sensors = sampler?.snapshot?.sensors ?? []
        health.upstreams = (forwarder?.status() ?? []).map { ($0.target, $0.connected, $0.recordsBehind, $0.secondsBehind) }
        health.remoteWrites = remoteWriters.map { writer in
            let status = writer.status()
            return (status.url, status.sentSamples, status.droppedSamples, status.failedRequests, status.lagSeconds)
        }
        return health
    }

    /// What the agent and the collector both publish: the version, the calls and points their
    /// services answered, and the process's own CPU time and resident memory.
    static func processHealth(version: String, statistics: CallStatistics) -> AgentHealth {
        var health = AgentHealth(version: version)
        let counts = statistics.current
        for (method, codes) in counts.calls.sorted(by: { $0.key < $1.key }) {
            for (code, count) in codes.sorted(by: { name($0.key) < name($1.key) }) {
                health.calls.append((method, name(code), count))
            }
        }
        health.points = counts.points.map { (name($0.key), $0.value) }.sorted { $0.0 < $1.0 }
        var usage = rusage()
        if getrusage(RUSAGE_SELF.rawValue, &usage) == 0 {
            health.cpuSeconds = Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
                + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        }
        health.residentBytes = residentBytes()
        return health
    }

    /// Ready when the listeners are bound and the store takes writes.
    private func readiness() -> String? {
        guard serving.load(ordering: .relaxed) else { return "not serving yet: the listeners are not bound" }
        if store.isClosed { return "the store is closed: the agent is stopping" }
        if let fault = store.storageFault { return "the store cannot take writes: \(fault)" }
        return nil
    }

    /// "OK", "INVALID_ARGUMENT", …: the status code names of the gRPC specification.
    static func name(_ code: RPCError.Code?) -> String {
        guard let code else { return "OK" }
        var out = ""
        for (index, character) in String(describing: code).enumerated() {
            if character.isUppercase, index > 0 { out.append("_") }
            out += character.uppercased()
        }
        return out
    }

    /// The second field of /proc/self/statm, in pages.
    static func residentBytes() -> Double? {
        let fd = open("/proc/self/statm", O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 128)
        let count = read(fd, &buffer, buffer.count)
        guard count > 0 else { return nil }
        let fields = buffer[..<count].split(separator: UInt8(ascii: " "))
        guard fields.count > 1, let pages = Double(String(decoding: fields[1], as: UTF8.self)) else { return nil }
        return pages * Double(sysconf(Int32(_SC_PAGESIZE)))
    }
}
