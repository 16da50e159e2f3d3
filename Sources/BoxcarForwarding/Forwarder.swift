#if canImport(Glibc)
import Glibc
#endif
import BoxcarAPI
import BoxcarModel
import BoxcarStorage
import BoxcarStore
import FoundationEssentials
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Logging
import NIOPosix
import Synchronization

// BoxcarForwarding: the agent's outbox shipped upstream (`boxcar agent --upstream`). A forwarder
// reads the database in seq order and sends it in batches over `boxcar.v1.Collector/Forward`,
// one batch in flight, each acknowledged only once the collector's PostgreSQL transaction holding
// it committed; the acknowledged seq is kept in the database, so a restart resumes where the
// collector is. It knows nothing of how the collector stores what it gets.

/// Where and how to forward.
public struct UpstreamConfiguration: Sendable {
    /// Collectors of the same PostgreSQL, used in turn when one fails.
    public var targets: [UpstreamTarget]
    /// Sent as `authorization: Bearer <token>` on every call.
    public var token: String?
    /// A PEM file of the certificate authorities to trust: TLS to every TCP target. nil: plaintext.
    public var caFile: String?
    /// Carried with every record (in the hello of each connection); `host` is always set.
    public var labels: [String: String]
    public var hostSeries: Store.HostSeriesForwarding
    /// `--upstream-from now`: what the database held before forwarding was first turned on stays.
    public var fromNow: Bool

    public init(
        targets: [UpstreamTarget], token: String? = nil, caFile: String? = nil, labels: [String: String] = [:],
        hostSeries: Store.HostSeriesForwarding = .attached, fromNow: Bool = false
    ) {
        self.targets = targets
        self.token = token
        self.caFile = caFile
        self.labels = labels
        self.hostSeries = hostSeries
        self.fromNow = fromNow
    }
}

/// A collector's address: `host:port`, or `unix:///path`.
public enum UpstreamTarget: Sendable, Hashable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case unixSocket(String)

    public init(parsing text: String) throws {
        if text.hasPrefix("unix://") {
            let path = String(text.dropFirst("unix://".count))
            guard path.hasPrefix("/") else {
                throw UpstreamError("upstream \(text) must be unix:///absolute/path or host:port")
            }
            self = .unixSocket(path)
            return
        }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (1...65535).contains(port)
        else {
            throw UpstreamError("upstream \(text) must be host:port (a port from 1 to 65535) or unix:///path")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw UpstreamError("upstream \(text) has no host") }
        self = .tcp(host: host, port: port)
    }

    public var description: String {
        switch self {
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unixSocket(let path): "unix://\(path)"
        }
    }
}

public struct UpstreamError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// How one upstream target stands, for `boxcar doctor` and Health.
public struct UpstreamStatus: Sendable {
    public var target: String
    public var connected: Bool
    /// The last seq the collectors acknowledged (they share one cursor).
    public var acknowledgedSeq: Int64
    /// Sequence numbers committed here and not yet acknowledged.
    public var recordsBehind: Int64
    /// How long the oldest of those has waited (0 when none waits).
    public var secondsBehind: Double
    public var lastError: String?
    public var quarantined: Int64
    public var skippedRecords: Int64
}

public final class Forwarder: Sendable {
    let store: Store
    let artifacts: ArtifactStore
    let identity: AgentIdentity
    let configuration: UpstreamConfiguration
    let version: String
    let logger: Logger
    private let state: Mutex<State>

    /// Records per batch, and about how many bytes: well within a gRPC message, and enough points
    /// (blocks of ~1,000) that a PostgreSQL commit per batch is not what limits a backlog's drain.
    static let maxRowsPerBatch = 4_096
    static let maxBytesPerBatch = 4 << 20
    static let chunkBytes = 1 << 20
    /// With nothing to ship but the cursor's move past rows that are not forwarded (the machine's
    /// series outside every window), it is sent this often at most.
    static let idleAdvancePeriod: Duration = .seconds(5)
    static let pollPeriod: Duration = .milliseconds(250)

    struct State {
        var acknowledged: Int64 = 0
        var quarantined: Int64 = 0
        var skippedRecords: Int64 = 0
        /// When the acknowledged seq last reached the last one committed.
        var caughtUpAt: ContinuousClock.Instant = .now
        var connected: Int? = nil
        var lastErrors: [Int: String] = [:]
        /// Whether the current connection had a batch acknowledged.
        var progressed = false
        /// Records the upstream refused that a full disk kept out of the quarantine so far.
        var unsavedRefusals: [Refusal] = []
        var acknowledgmentUnsaved = false
    }

    typealias Refusal = (seq: Int64, kind: String, reason: String)

    public init(
        store: Store, artifacts: ArtifactStore, identity: AgentIdentity, configuration: UpstreamConfiguration,
        version: String, logger: Logger
    ) {
        self.store = store
        self.artifacts = artifacts
        self.identity = identity
        self.configuration = configuration
        self.version = version
        self.logger = logger
        self.state = Mutex(State())
    }

    public func status() -> [UpstreamStatus] {
        let last = store.lastSequence
        let state = state.withLock { $0 }
        let behind = max(0, last - state.acknowledged)
        return configuration.targets.enumerated().map { index, target in
            UpstreamStatus(
                target: target.description, connected: state.connected == index,
                acknowledgedSeq: state.acknowledged, recordsBehind: behind,
                secondsBehind: behind == 0 ? 0 : (ContinuousClock.now - state.caughtUpAt).seconds,
                lastError: state.lastErrors[index], quarantined: state.quarantined,
                skippedRecords: state.skippedRecords)
        }
    }

    /// Forwards until cancelled: each target in turn, with backoff between failures (full jitter,
    /// 0.5 s doubling to 60 s), for ever.
    public func run() async throws {
        var start: Store.ForwardState
        var backoff = Backoff()
        while true {
            do {
                start = try await store.forwardState(startingFromNow: configuration.fromNow)
                break
            } catch is CancellationError {
                return
            } catch {
                logger.error("cannot read where forwarding stands from the database; retrying", metadata: ["error": "\(error)"])
                try await Task.sleep(for: backoff.next())
            }
        }
        state.withLock {
            $0.acknowledged = max(start.acknowledged, start.start)
            $0.quarantined = start.quarantined
            $0.skippedRecords = start.skippedRecords
        }
        backoff.reset()
        var index = 0
        while !Task.isCancelled {
            let target = configuration.targets[index]
            do {
                try await session(target: target, index: index, start: start.start)
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled { return }
                let message = describe(error)
                let changed = state.withLock { state -> Bool in
                    state.connected = nil
                    defer { state.lastErrors[index] = message }
                    return state.lastErrors[index] != message
                }
                if changed {
                    logger.warning("cannot forward to \(target); retrying", metadata: ["error": "\(message)"])
                } else {
                    logger.debug("cannot forward to \(target); retrying", metadata: ["error": "\(message)"])
                }
            }
            // A connection that shipped something starts the backoff over; one that failed at
            // once moves on to the next target, and waits longer.
            if state.withLock({ state in defer { state.progressed = false }; return state.progressed }) {
                backoff.reset()
            }
            index = (index + 1) % configuration.targets.count
            try? await Task.sleep(for: backoff.next())
        }
    }

    // MARK: One connection

    private func session(target: UpstreamTarget, index: Int, start: Int64) async throws {
        let transport = try makeTransport(target)
        var options = CallOptions.defaults
        // A collector that is down is an error now (and the next target is tried), not a wait.
        options.waitForReady = false
        var metadata: GRPCCore.Metadata = [:]
        if let token = configuration.token { metadata.addString("Bearer \(token)", forKey: "authorization") }
        try await withGRPCClient(transport: transport) { client in
            let collector = Boxcar_V1_Collector.Client(wrapping: client)
            let (responses, continuation) = AsyncThrowingStream.makeStream(
                of: Boxcar_V1_ForwardResponse.self, throwing: (any Error).self)
            try await collector.forward(
                metadata: metadata, options: options,
                requestProducer: { writer in
                    var iterator = responses.makeAsyncIterator()
                    try await self.drive(writer: writer, responses: &iterator, index: index, start: start)
                },
                onResponse: { response in
                    do {
                        for try await message in response.messages { continuation.yield(message) }
                        continuation.finish(throwing: UpstreamError("the collector ended the stream"))
                    } catch {
                        continuation.finish(throwing: error)
                        throw error
                    }
                })
        }
    }

    private func makeTransport(_ target: UpstreamTarget) throws -> HTTP2ClientTransport.Posix {
        // A collector whose host lost power or whose network went away answers nothing, and the
        // stream would wait for its acknowledgement for ever: pings find out within 40 s.
        var config = HTTP2ClientTransport.Posix.Config.defaults
        config.connection.keepalive = .init(time: .seconds(30), timeout: .seconds(10), allowWithoutCalls: true)
        switch target {
        case .unixSocket(let path):
            return try HTTP2ClientTransport.Posix(
                target: .unixDomainSocket(path: path), transportSecurity: .plaintext, config: config)
        case .tcp(let host, let port):
            let resolvable: any ResolvableTarget =
                if host.contains(":") { .ipv6(address: host, port: port) }
                else if host.split(separator: ".").count == 4 && host.allSatisfy({ $0.isNumber || $0 == "." }) {
                    .ipv4(address: host, port: port)
                } else { .dns(host: host, port: port) }
            let security: HTTP2ClientTransport.Posix.TransportSecurity =
                if let ca = configuration.caFile {
                    .tls(.defaults { $0.trustRoots = .certificates([.file(path: ca, format: .pem)]) })
                } else { .plaintext }
            return try HTTP2ClientTransport.Posix(target: resolvable, transportSecurity: security, config: config)
        }
    }

    /// The agent's side of one Forward stream: hello, then batches from the collector's cursor.
    private func drive(
        writer: RPCWriter<Boxcar_V1_ForwardRequest>,
        responses: inout AsyncThrowingStream<Boxcar_V1_ForwardResponse, any Error>.AsyncIterator,
        index: Int, start: Int64
    ) async throws {
        try await writer.write(.with {
            $0.hello = .with {
                $0.agentID = identity.agentID
                $0.recordVersion = forwardRecordVersion
                $0.hostName = identity.hostName
                $0.machineID = identity.machineID
                $0.labels = configuration.labels
                $0.agentVersion = version
                $0.firstSeq = UInt64(start)
            }
        })
        guard let first = try await responses.next(), case .welcome(let welcome)? = first.kind else {
            throw UpstreamError("the collector did not answer the hello with a welcome")
        }
        let cursor = Int64(clamping: welcome.cursor)
        let told = state.withLock { state -> Int64 in
            state.connected = index
            state.lastErrors[index] = nil
            return state.acknowledged
        }
        if cursor > store.lastSequence {
            // The collector holds seqs this database no longer has: its last commits were lost
            // (a power loss under --durability normal, a restored file). New records must not
            // reuse those numbers, which the collector would take for ones it holds.
            logger.warning("the upstream holds seqs past this database's last; numbering goes on after them", metadata: [
                "upstream_cursor": "\(cursor)", "last_seq": "\(store.lastSequence)",
            ])
            try await store.advanceSequence(past: cursor)
        }
        if cursor < told {
            // Its PostgreSQL was restored from a backup, say: ship again what it lost, and say
            // what this agent no longer holds (records = 0: how many is not known).
            let lost = try await store.recordLostRange(after: cursor)
            logger.warning("the upstream holds less than it acknowledged; sending again from its cursor", metadata: [
                "upstream_cursor": "\(cursor)", "acknowledged": "\(told)",
                "removed_meanwhile": "\(lost ? "some, shipped as a skipped range" : "none")",
            ])
        }
        logger.info("forwarding to \(configuration.targets[index])", metadata: ["from_seq": "\(cursor)"])
        _ = try await keepAcknowledgment(through: cursor, refused: [])
        state.withLock { $0.acknowledged = cursor }
        var position = cursor
        var batchID: UInt64 = 0
        var lastSent = ContinuousClock.now
        // The last seq committed when the outbox last had nothing to ship: until it moves, there
        // is nothing to read.
        var emptyAt: Int64 = -1
        while true {
            try Task.checkCancellation()
            let committed = store.lastSequence
            let advanceDue = ContinuousClock.now - lastSent >= Self.idleAdvancePeriod
            if committed == position || (committed == emptyAt && !advanceDue) {
                if committed == position { markCaughtUp() }
                try await Task.sleep(for: Self.pollPeriod)
                continue
            }
            let batch = try await store.outbox(
                after: position, maxRows: Self.maxRowsPerBatch, maxBytes: Self.maxBytesPerBatch,
                hostSeries: configuration.hostSeries)
            if batch.rows.isEmpty && !advanceDue {
                // Only rows that are not forwarded: the cursor moves past them now and then.
                emptyAt = committed
                continue
            }
            batchID += 1
            try await sendFiles(of: batch, to: writer)
            try await writer.write(.with {
                $0.batch = .with {
                    $0.batchID = batchID
                    $0.afterSeq = UInt64(batch.after)
                    $0.throughSeq = UInt64(batch.through)
                    $0.records = batch.rows.map { Boxcar_V1_ForwardRecord(seq: $0.seq, row: $0.row) }
                    let standing = status().first
                    $0.agentLastSeq = UInt64(max(0, store.lastSequence))
                    $0.agentLagSeconds = standing?.secondsBehind ?? 0
                }
            })
            lastSent = .now
            guard let answer = try await responses.next(), case .ack(let ack)? = answer.kind else {
                throw UpstreamError("the collector answered a batch with something other than its acknowledgement")
            }
            guard ack.batchID == batchID, ack.throughSeq == UInt64(batch.through) else {
                throw UpstreamError("the collector acknowledged batch \(ack.batchID) through \(ack.throughSeq), not batch \(batchID) through \(batch.through)")
            }
            let kinds = Dictionary(batch.rows.map { ($0.seq, $0.row.kind) }, uniquingKeysWith: { a, _ in a })
            let refused = ack.refused.map { (seq: Int64($0.seq), kind: kinds[Int64($0.seq)] ?? "record", reason: $0.reason) }
            let kept = try await keepAcknowledgment(through: batch.through, refused: refused)
            for record in refused {
                let aside = kept ? "it is set aside in the quarantine" : "it is set aside in the quarantine once the disk has room"
                logger.error("the upstream refused a record as malformed; \(aside)", metadata: [
                    "seq": "\(record.seq)", "kind": "\(record.kind)", "reason": "\(record.reason)",
                ])
            }
            position = batch.through
            let skipped = batch.rows.reduce(into: Int64(0)) { total, entry in
                if case .skipped(_, let records, _) = entry.row { total += records }
            }
            state.withLock {
                $0.acknowledged = batch.through
                $0.quarantined += Int64(refused.count)
                $0.skippedRecords += skipped
                $0.progressed = true
            }
            if batch.through >= store.lastSequence { markCaughtUp() }
        }
    }

    /// Keeps in the database what the upstream acknowledged. On a full disk nothing can be
    /// committed (not even this), yet forwarding what the database holds must go on: the
    /// acknowledgment then stays in memory, and the next one that commits keeps it too, with the
    /// refused records waiting for the quarantine. Should the agent stop meanwhile, it starts
    /// from the cursor the upstream gives in its welcome, as always: nothing is shipped twice or
    /// skipped, and only the quarantine misses those refused records.
    /// Whether it is in the database now.
    private func keepAcknowledgment(through: Int64, refused: [Refusal]) async throws -> Bool {
        let refusals = state.withLock { $0.unsavedRefusals } + refused
        do {
            try await store.acknowledgeForwarded(through: through, refused: refusals)
            let wasUnsaved = state.withLock { state in
                defer { state.unsavedRefusals = []; state.acknowledgmentUnsaved = false }
                return state.acknowledgmentUnsaved
            }
            if wasUnsaved { logger.notice("the acknowledged seq is kept in the database again", metadata: ["through": "\(through)"]) }
            return true
        } catch let error as any StorageError where error.isOutOfSpace {
            let first = state.withLock { state in
                defer { state.unsavedRefusals = refusals; state.acknowledgmentUnsaved = true }
                return !state.acknowledgmentUnsaved
            }
            if first {
                logger.warning("the disk is full: forwarding goes on, with the acknowledged seq kept in memory until it can be written", metadata: [
                    "through": "\(through)", "error": "\(error)",
                ])
            }
            return false
        }
    }

    private func markCaughtUp() {
        state.withLock { $0.caughtUpAt = .now }
    }

    /// Sends the bytes of every uploaded file in the batch, just before it.
    private func sendFiles(of batch: Store.OutboxBatch, to writer: RPCWriter<Boxcar_V1_ForwardRequest>) async throws {
        for (_, row) in batch.rows {
            guard case .file(_, _, _, _, _, let blob?, let size?, _, _) = row else { continue }
            guard let reader = try artifacts.openBlob(blob) else {
                // Sent without its bytes: the collector refuses the record and it is quarantined.
                logger.warning("an uploaded file's bytes are missing from the artifacts directory", metadata: ["blob": "\(blob)"])
                continue
            }
            var offset: UInt64 = 0
            // Reads block on the disk: on NIO's blocking pool, never the concurrency pool's few
            // threads. An empty file is one empty chunk, so the collector has its (empty) bytes too.
            while let data = try await NIOThreadPool.singleton.runIfActive({ try reader.next(maxBytes: Self.chunkBytes) })
                ?? (offset == 0 && size == 0 ? Data() : nil)
            {
                try await writer.write(.with {
                    $0.chunk = .with {
                        $0.blob = blob
                        $0.offset = offset
                        $0.data = data
                        $0.size = UInt64(size)
                    }
                })
                offset += UInt64(data.count)
                if data.isEmpty { break }
            }
        }
    }
}

/// Waits between attempts: full jitter over an exponential ceiling (0.5 s doubling to 60 s), so
/// that a fleet reconnecting after an outage spreads out instead of arriving at once.
struct Backoff {
    static let first: Double = 0.5
    static let ceiling: Double = 60
    private var attempt = 0

    mutating func next() -> Duration {
        let bound = min(Self.ceiling, Self.first * Double(1 << min(attempt, 16)))
        attempt += 1
        return .milliseconds(Int64(Double.random(in: 0...bound) * 1000))
    }

    mutating func reset() { attempt = 0 }
}

func describe(_ error: any Error) -> String {
    if let rpc = error as? RPCError { return "\(rpc.code): \(rpc.message)" }
    return "\(error)"
}
