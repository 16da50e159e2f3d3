import BoxcarAPI
import BoxcarFlowControl
import BoxcarModel
import BoxcarStorage
import GRPCCore
import Logging

// BoxcarServer: the agent's gRPC services and the listeners they are served on.
//
// `modelbox.ModelStore` (what every ModelBox client expects) and `boxcar.v1.Agent` (bulk ingest,
// attachments, queries, health) are served over a `RecordStore`, so the same services run on the
// agent's SQLite file and on any other store. Each request is validated here and each refusal
// leaves as a gRPC status with a reason (ErrorStatus); flow control (BoxcarFlowControl) bounds what
// a client can make the agent hold. It knows nothing of which store it serves, nor of the
// process it runs in: opening the store, sampling and signals are the executable's.

/// Every service the agent serves, over one store, ready for any number of listeners.
public struct AgentServices: Sendable {
    public let services: [any RegistrableRPCService]
    /// Calls and points answered, for the exporter.
    public let statistics: CallStatistics
    /// Bytes of requests held for clients before their calls take them, across every stream (half
    /// of `ingestMemoryBytes`; Log batches taken and not yet committed have the other half): give
    /// it to the listeners' `ConnectionGate`.
    public let budget: ByteBudget
    /// The descriptors clients hold: give the same to the listeners' gate.
    public let descriptors: ClientDescriptors
    /// Give these to each listener (`Listener.server(interceptors:)`): long calls leave the
    /// listeners' event loop (`LongCallsOffTheLoop`), and every call's outcome is counted.
    public var interceptors: [any ServerInterceptor] { [LongCallsOffTheLoop(), statistics.interceptor] }
    private let changes: ChangeFeed

    /// - Parameters:
    ///   - socketPath: the unix socket the agent serves, as GetClusterMembers reports it (its id
    ///     is `host:path`, its address `unix://path`).
    ///   - ingestMemoryBytes: bytes of requests and Log batches held for clients, across every
    ///     stream, half for each; a stream whose next message finds no room waits (backpressure).
    ///   - upstreams: where forwarding stands, for Health (the forwarder's, when there is one).
    ///   - descriptors: the descriptors clients hold (give the same to the listeners' gate): an
    ///     upload's or a download's file past them is refused.
    ///   - machine: the machine's last tick and the trainers attached, for Snapshot (the sampler's;
    ///     by default none: sampling off).
    ///   - stepsArrived: told each series' steps as a batch of points arrives (the sampler marks
    ///     the steps an attached trainer begins).
    public init(
        store: any RecordStore, artifacts: ArtifactStore, limits: Limits, ingestMemoryBytes: Int,
        hostName: String, socketPath: String, version: String, logger: Logger,
        descriptors: ClientDescriptors = ClientDescriptors(limit: ConnectionLimits().effectiveMaxConnections),
        upstreams: @escaping @Sendable () -> [Boxcar_V1_UpstreamStatus] = { [] },
        machine: (@Sendable () async throws -> Boxcar_V1_SnapshotResponse)? = nil,
        stepsArrived: @escaping @Sendable (_ parentID: String, _ steps: [UInt64]) -> Void = { _, _ in }
    ) {
        let changes = ChangeFeed()
        let statistics = CallStatistics()
        self.statistics = statistics
        budget = ByteBudget(capacity: ingestMemoryBytes / 2)
        self.descriptors = descriptors
        let member = Modelbox_ClusterMember.with {
            $0.id = hostName + ":" + socketPath
            $0.hostName = hostName
            $0.rpcAddr = "unix://" + socketPath
        }
        self.changes = changes
        self.services = [
            ModelStoreService(
                store: store, artifacts: artifacts, limits: limits, changes: changes, member: member,
                logger: logger, statistics: statistics, descriptors: descriptors, stepsArrived: stepsArrived),
            AgentService(
                store: store, limits: limits, startedAt: .now, version: version, logger: logger,
                budget: ByteBudget(capacity: ingestMemoryBytes / 2), upstreams: upstreams, statistics: statistics,
                machine: machine ?? { .with { $0.hostName = hostName } }, stepsArrived: stepsArrived),
        ]
    }

    /// Ends every WatchNamespace stream, which would otherwise hold a graceful shutdown open.
    public func finishWatches() {
        changes.finishAll()
    }
}
