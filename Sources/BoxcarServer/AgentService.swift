import BoxcarAPI
import BoxcarFlowControl
import BoxcarModel
import BoxcarStorage
import GRPCCore
import Logging

/// `boxcar.v1.Agent`: bulk ingest as packed columns, attachments, queries for exporters, health.
struct AgentService: Boxcar_V1_Agent.SimpleServiceProtocol {
    let store: any RecordStore
    let limits: Limits
    let startedAt: ContinuousClock.Instant
    let version: String
    let logger: Logger
    /// Shared by every Log stream: bytes of batches read (decoded) and not yet committed.
    let budget: ByteBudget
    let upstreams: @Sendable () -> [Boxcar_V1_UpstreamStatus]
    let statistics: CallStatistics
    /// The machine's last tick and its trainers, as the sampler has them (without the trainers'
    /// experiment names and points, which are found here).
    let machine: @Sendable () async throws -> Boxcar_V1_SnapshotResponse
    /// Told each series' steps as a batch arrives (StepMarks).
    let stepsArrived: @Sendable (_ parentID: String, _ steps: [UInt64]) -> Void

    // MARK: Log

    /// Reads batches and queues each for the writer as soon as it is checked, while a second task
    /// waits for the commits in order and acknowledges them: reading, committing and acknowledging
    /// overlap, and the writer's queue bounds what is in flight.
    func log(
        request: RPCAsyncSequence<Boxcar_V1_LogBatch, any Error>, response: RPCWriter<Boxcar_V1_LogAck>,
        context: ServerContext
    ) async throws {
        let (commits, committed) = AsyncStream.makeStream(of: Commit.self)
        // Batches of this stream after a refused one are refused too, never stored.
        let chain = WriteChain()
        // What one stream may hold in memory: batches read but not yet acknowledged.
        let window = Credits(Self.maxBatchesInFlight)
        // The memory budget this stream holds; what a broken stream still holds is given back
        // when it ends.
        let account = ByteBudget.Account(budget)
        defer { account.close() }
        try await handling {
            // The reader returns the refusal of a bad batch instead of throwing it, so that the
            // acknowledger first answers every batch before it; an error thrown by either task
            // (a failed commit, a broken stream) cancels the other.
            let refusal = try await withThrowingTaskGroup(of: RPCError?.self) { group in
                group.addTask {
                    do {
                        for await (batchID, points, byParent, bytes, pending) in commits {
                            let sequence: Int64
                            do {
                                defer { account.release(bytes) }
                                sequence = try await pending.value()
                                statistics.accepted(byParent)
                            } catch {
                                let refusal = Self.refusal(batchID: batchID, error)
                                statistics.points(Int(points), refusal.code)
                                throw refusal
                            }
                            try await response.write(.with {
                                $0.batchID = batchID
                                $0.sequence = UInt64(sequence)
                                $0.points = points
                            })
                            window.release()
                        }
                        return nil
                    } catch {
                        // A reader parked on a full window must not wait for acknowledgements
                        // that will never come.
                        window.fail(error)
                        throw error
                    }
                }
                group.addTask {
                    defer { committed.finish() }
                    var knownParents: Set<String> = []
                    var batches = request.makeAsyncIterator()
                    // The window and the budget of decoded batches are waited for before the next
                    // batch is read, so that a stream that waits has not read it: its bytes stay
                    // with the transport, which counts them in a budget of their own
                    // (InboundBudget.swift), or with the client (HTTP/2 flow control). A batch read
                    // is counted at once; waiting holds nothing, and only commits free this
                    // budget, so streams cannot wait on each other.
                    while true {
                        try await window.acquire()
                        try await account.waitForRoom()
                        guard let batch = try await batches.next() else { return nil }
                        let ingest: IngestBatch
                        do {
                            ingest = try batch.validated(limits)
                            // Check parents here, not only in the transaction, so that a refused
                            // batch is the last one read.
                            // The series a batch declares count even when none of its points
                            // do: a batch of no points to a parent that is not there is refused.
                            var parents = Self.parents(of: ingest)
                            for reference in batch.series { parents.insert(reference.parentID) }
                            for parent in parents where !knownParents.contains(parent) {
                                guard try await store.objectKind(parent) != nil else {
                                    throw NotFoundError("parent_id \(parent) names no experiment, checkpoint, model, version or file")
                                }
                                knownParents.insert(parent)
                            }
                        } catch {
                            let refusal = Self.refusal(batchID: batch.batchID, error)
                            statistics.points(batch.points.key.count + batch.stringPoints.count + batch.bytesPoints.count, refusal.code)
                            return refusal
                        }
                        for series in ingest.series { stepsArrived(series.parentID, series.columns.steps) }
                        do {
                            let bytes = ingest.estimatedBytes
                            account.take(bytes)
                            let pending = try await store.submitIngest(ingest, chain: chain)
                            var byParent: [String: Int] = [:]
                            for series in ingest.series { byParent[series.parentID, default: 0] += series.columns.count }
                            committed.yield((batch.batchID, UInt32(ingest.pointCount), byParent, bytes, pending))
                        } catch {
                            // Shutting down: the batches queued before this one still commit and
                            // are acknowledged before the stream ends.
                            let refusal = Self.refusal(batchID: batch.batchID, error)
                            statistics.points(ingest.pointCount, refusal.code)
                            return refusal
                        }
                    }
                }
                var refusal: RPCError?
                for try await result in group where result != nil { refusal = result }
                return refusal
            }
            if let refusal { throw refusal }
        }
    }

    /// A batch queued for the writer: its id, its points (in all and by parent), the bytes it holds
    /// of the stream's budget, and its commit.
    typealias Commit = (batchID: UInt64, points: UInt32, byParent: [String: Int], bytes: Int, pending: Pending<Int64>)

    /// Batches one stream may have read but not yet acknowledged; the client's window is smaller.
    static let maxBatchesInFlight = 64

    static func refusal(batchID: UInt64, _ error: any Error) -> RPCError {
        let status = rpcError(error)
        return RPCError(
            code: status.code,
            message: "batch \(batchID) refused, nothing of it stored: \(status.message)",
            metadata: status.metadata)
    }

    static func parents(of batch: IngestBatch) -> Set<String> {
        var parents = Set(batch.series.map(\.parentID))
        parents.formUnion(batch.events.map(\.parentID))
        parents.formUnion(batch.metadata.map(\.parentID))
        return parents
    }

    // MARK: Attachments

    func attach(request: Boxcar_V1_AttachRequest, context: ServerContext) async throws -> Boxcar_V1_AttachResponse {
        try await handling {
            try limits.checkParentID(request.experimentID, "experiment_id")
            guard request.pid > 0 else { throw ValidationError("pid must be a positive process id") }
            let at = try await store.attach(experimentID: request.experimentID, pid: request.pid)
            logger.info("attached", metadata: ["experiment": "\(request.experimentID)", "pid": "\(request.pid)"])
            return .with { $0.attachedAt = .init(nanoseconds: at) }
        }
    }

    func detach(request: Boxcar_V1_DetachRequest, context: ServerContext) async throws -> Boxcar_V1_DetachResponse {
        try await handling {
            let at = try await store.detach(experimentID: request.experimentID, pid: request.pid)
            logger.info("detached", metadata: ["experiment": "\(request.experimentID)", "pid": "\(request.pid)"])
            return .with { $0.detachedAt = .init(nanoseconds: at) }
        }
    }

    // MARK: Queries

    func queryMetrics(
        request: Boxcar_V1_QueryMetricsRequest, context: ServerContext
    ) async throws -> Boxcar_V1_QueryMetricsResponse {
        try await handling {
            if request.to != 0 && request.to < request.from {
                throw ValidationError("to (\(request.to)) is before from (\(request.from)); 0 means no upper bound")
            }
            let axis: MetricRange.Axis
            switch request.axis {
            case .step: axis = .step
            case .wallclock: axis = .wallclock
            case .UNRECOGNIZED(let value):
                throw ValidationError("axis \(value) is none of STEP (0) and WALLCLOCK (1)")
            }
            // No bounds (the default request): every point, read without a filter pass.
            let range: MetricRange? =
                axis == .step && request.from <= 0 && request.to == 0
                ? nil : MetricRange(from: request.from, to: request.to == 0 ? .max : request.to, axis: axis)
            let series = try await store.metrics(
                parentID: request.parentID, keys: request.keys.isEmpty ? nil : request.keys, range: range)
            return .with { response in
                response.series = series.map { entry in
                    var columns = entry.columns
                    if request.maxPoints > 0 { columns = columns.thinned(to: Int(request.maxPoints)) }
                    return Boxcar_V1_SeriesColumns(key: entry.key, columns: columns)
                }
            }
        }
    }

    func listExperiments(
        request: Boxcar_V1_ListExperimentsRequest, context: ServerContext
    ) async throws -> Boxcar_V1_ListExperimentsResponse {
        try await handling {
            try limits.checkName(request.namespace, "namespace", required: false)
            let experiments = try await store.experiments(namespace: request.hasNamespace ? request.namespace : nil)
            return .with { $0.experiments = experiments.map(Modelbox_Experiment.init) }
        }
    }

    func snapshot(request: Boxcar_V1_SnapshotRequest, context: ServerContext) async throws -> Boxcar_V1_SnapshotResponse {
        try await handling {
            var snapshot = try await machine()
            let points = statistics.accepted(parents: snapshot.trainers.map(\.experimentID))
            snapshot.countedAt = WallClock.now()
            for index in snapshot.trainers.indices {
                let id = snapshot.trainers[index].experimentID
                snapshot.trainers[index].pointsLogged = UInt64(points[id] ?? 0)
                snapshot.trainers[index].experimentName = try await store.experiment(id: id)?.name ?? ""
            }
            return snapshot
        }
    }

    func queryStepCosts(
        request: Boxcar_V1_QueryStepCostsRequest, context: ServerContext
    ) async throws -> Boxcar_V1_QueryStepCostsResponse {
        try await handling {
            try limits.checkParentID(request.experimentID, "experiment_id")
            let keys = try await store.metricKeys(parentID: request.experimentID)
            let costs = try await StepCosts.read(experimentID: request.experimentID, key: request.key.isEmpty ? nil : request.key, keys: keys) {
                keys, steps in
                let range = steps.map { MetricRange(from: Int64(clamping: $0.lowerBound), to: Int64(clamping: $0.upperBound), axis: .step) }
                return try await store.metrics(parentID: request.experimentID, keys: keys, range: range)
            }
            return Boxcar_V1_QueryStepCostsResponse(costs)
        }
    }

    func health(request: Boxcar_V1_HealthRequest, context: ServerContext) async throws -> Boxcar_V1_HealthResponse {
        let uptime = ContinuousClock.now - startedAt
        return .with {
            $0.status = "serving"
            $0.version = version
            $0.uptimeSeconds = uptime.seconds
            $0.database = store.location
            $0.lastSequence = UInt64(store.lastSequence)
            $0.pendingWrites = UInt64(store.pendingWrites)
            $0.upstreams = upstreams()
        }
    }
}
