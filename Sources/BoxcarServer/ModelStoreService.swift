import BoxcarAPI
import BoxcarModel
import BoxcarStorage
import FoundationEssentials
import GRPCCore
import Logging
import NIOPosix
import SwiftProtobuf

/// `modelbox.ModelStore`, per ../shared/api/modelbox-wire.md: what an existing ModelBox client
/// expects, over the agent's socket.
struct ModelStoreService: Modelbox_ModelStore.SimpleServiceProtocol {
    let store: any RecordStore
    let artifacts: ArtifactStore
    let limits: Limits
    let changes: ChangeFeed
    let member: Modelbox_ClusterMember
    let logger: Logger
    let statistics: CallStatistics
    /// The descriptors clients hold: an upload's or a download's file is one.
    let descriptors: ClientDescriptors
    /// Told a metric's step as it arrives (StepMarks).
    let stepsArrived: @Sendable (_ parentID: String, _ steps: [UInt64]) -> Void

    /// Bytes per DownloadFile chunk: with the chunk's field tag and length (4 bytes) and gRPC's
    /// prefix (5), a message fills a 256 KiB buffer exactly (a larger one gets a buffer at the next
    /// power of two: a 1 MiB chunk took 2 MiB). Measured (boxcar-bench stalled, a 256 MiB
    /// download): 64 KiB chunks held 0.33 MB a stalled stream but downloaded at 275 MiB/s; 256 KiB
    /// hold 0.64 MB and download at 480 to 520 MiB/s (1 MiB chunks without a window: 4.2 MB, 530
    /// to 600 MiB/s).
    static let downloadChunkBytes = (256 << 10) - 9

    // MARK: Experiments

    func createExperiment(
        request: Modelbox_CreateExperimentRequest, context: ServerContext
    ) async throws -> Modelbox_CreateExperimentResponse {
        try await handling {
            let (experiment, existed) = try await store.createExperiment(request.validated(limits))
            if !existed { changes.publish(.experiment(experiment, created: true)) }
            return .with {
                $0.experimentID = experiment.id
                $0.experimentExists = existed
                $0.createdAt = .init(nanoseconds: experiment.createdAt)
                $0.updatedAt = .init(nanoseconds: experiment.updatedAt)
            }
        }
    }

    func getExperiment(
        request: Modelbox_GetExperimentRequest, context: ServerContext
    ) async throws -> Modelbox_GetExperimentResponse {
        try await handling {
            guard let experiment = try await store.experiment(id: request.id) else {
                throw NotFoundError("experiment \(request.id) does not exist")
            }
            return .with { $0.experiment = Modelbox_Experiment(experiment) }
        }
    }

    func listExperiments(
        request: Modelbox_ListExperimentsRequest, context: ServerContext
    ) async throws -> Modelbox_ListExperimentsResponse {
        try await handling {
            try limits.checkName(request.namespace, "namespace", required: false)
            let experiments = try await store.experiments(namespace: request.namespace)
            return .with { $0.experiments = experiments.map(Modelbox_Experiment.init) }
        }
    }

    // MARK: Metadata

    func updateMetadata(
        request: Modelbox_UpdateMetadataRequest, context: ServerContext
    ) async throws -> Modelbox_UpdateMetadataResponse {
        try await handling {
            try limits.checkWritableParentID(request.parentID)
            let metadata = try request.metadata.validated(limits)
            let updatedAt = try await store.updateMetadata(parentID: request.parentID, metadata: metadata)
            if let experiment = try await store.experiment(id: request.parentID) {
                changes.publish(.experiment(experiment, created: false))
            }
            return .with {
                $0.numKeysWritten = Int32(metadata.count)
                $0.updatedAt = .init(nanoseconds: updatedAt)
            }
        }
    }

    func listMetadata(
        request: Modelbox_ListMetadataRequest, context: ServerContext
    ) async throws -> Modelbox_ListMetadataResponse {
        try await handling {
            let metadata = try await store.metadata(parentID: request.parentID)
            return .with { $0.metadata = metadata.protobuf }
        }
    }

    // MARK: Metrics

    func logMetrics(
        request: Modelbox_LogMetricsRequest, context: ServerContext
    ) async throws -> Modelbox_LogMetricsResponse {
        do {
            let columns = try request.validated(limits)
            stepsArrived(request.parentID, columns.steps)
            try await store.appendMetrics(parentID: request.parentID, key: request.key, columns: columns)
            statistics.accepted([request.parentID: columns.count])
            return Modelbox_LogMetricsResponse()
        } catch {
            let refusal = rpcError(error)
            statistics.points(1, refusal.code)  // a LogMetrics call carries one point
            throw refusal
        }
    }

    func getMetrics(
        request: Modelbox_GetMetricsRequest, context: ServerContext
    ) async throws -> Modelbox_GetMetricsResponse {
        try await handling {
            // Written straight from the stored columns: a long run's answer holds millions of
            // points (see GetMetricsEncoding).
            try GetMetricsEncoding.response(try await store.metrics(parentID: request.parentID))
        }
    }

    // MARK: Events

    func logEvent(
        request: Modelbox_LogEventRequest, context: ServerContext
    ) async throws -> Modelbox_LogEventResponse {
        try await handling {
            try limits.checkWritableParentID(request.parentID)
            let event = try request.event.validated(limits, parentID: request.parentID)
            let createdAt = try await store.logEvent(event)
            return .with { $0.createdAt = .init(nanoseconds: createdAt) }
        }
    }

    func listEvents(
        request: Modelbox_ListEventsRequest, context: ServerContext
    ) async throws -> Modelbox_ListEventsResponse {
        try await handling {
            let since = request.hasSince && request.since.nanoseconds != 0 ? request.since.nanoseconds : .min
            let events = try await store.events(parentID: request.parentID, since: since)
            return .with { $0.events = events.map(Modelbox_Event.init) }
        }
    }

    // MARK: Artifacts

    func trackArtifacts(
        request: Modelbox_TrackArtifactsRequest, context: ServerContext
    ) async throws -> Modelbox_TrackArtifactsResponse {
        try await handling {
            let records = try await store.addFiles(request.files.validated(limits, parentRequired: true))
            return .with {
                $0.numFilesTracked = Int32(records.count)
                $0.createdAt = .init(nanoseconds: records.first?.createdAt ?? WallClock.now())
            }
        }
    }

    func listArtifacts(
        request: Modelbox_ListArtifactsRequest, context: ServerContext
    ) async throws -> Modelbox_ListArtifactsResponse {
        try await handling {
            let files = try await store.files(parentID: request.parentID)
            return .with { $0.files = files.map(Modelbox_FileMetadata.init) }
        }
    }

    func uploadFile(
        request: RPCAsyncSequence<Modelbox_UploadFileRequest, any Error>, context: ServerContext
    ) async throws -> Modelbox_UploadFileResponse {
        try await handling {
            var frames = request.makeAsyncIterator()
            guard let first = try await frames.next(), case .metadata(let metadata) = first.streamFrame else {
                throw ValidationError("the first frame of UploadFile must be metadata (parent_id, file_type, checksum, path)")
            }
            // Refused before any byte is taken where nothing can be recorded.
            guard store.isWritable else {
                throw ReadOnlyError(
                    location: store.location,
                    reason: "\(store.location) takes no writes through this API: the upload is refused before any byte is stored")
            }
            var file = try metadata.validated(limits)
            let expected = ExpectedChecksum(metadata.checksum)
            // Refuse an unknown parent before taking any bytes.
            guard try await store.objectKind(file.parentID) != nil else {
                throw NotFoundError("parent_id \(file.parentID) names no experiment, checkpoint, model, version or file")
            }
            try descriptors.takeForFile()
            defer { descriptors.remove() }
            let upload = try artifacts.beginUpload(maxBytes: limits.maxUploadBytes)
            defer { upload.abort() }
            while let frame = try await frames.next() {
                guard case .chunks(let chunk) = frame.streamFrame else {
                    throw ValidationError("UploadFile takes one metadata frame, first; the rest must be chunks")
                }
                try await NIOThreadPool.singleton.runIfActive { try upload.write(chunk) }
            }
            let digests = upload.digests()
            try expected.verify(digests)
            try await NIOThreadPool.singleton.runIfActive { try upload.commit(sha256: digests.sha256) }
            file.blob = digests.sha256
            file.size = upload.size
            // Should recording fail now (shutdown, a full disk), the blob stays: another upload of
            // the same bytes may be about to reference it, and an unreferenced blob only costs space.
            let records = try await store.addFiles([file])
            return .with { $0.fileID = records[0].id }
        }
    }

    func downloadFile(
        request: Modelbox_DownloadFileRequest, response: RPCWriter<Modelbox_DownloadFileResponse>,
        context: ServerContext
    ) async throws {
        try await handling {
            guard let file = try await store.file(id: request.fileID) else {
                throw NotFoundError("file \(request.fileID) does not exist")
            }
            guard let blob = file.blob else {
                throw RPCError(
                    code: .failedPrecondition,
                    message: "file \(file.id) (\(file.path)) was tracked, not uploaded: the agent holds no bytes for it")
            }
            try descriptors.takeForFile()
            defer { descriptors.remove() }
            guard let reader = try artifacts.openBlob(blob) else {
                throw RPCError(
                    code: .failedPrecondition,
                    message: "the bytes of file \(file.id) are missing from the artifacts directory \(artifacts.root)")
            }
            try await response.write(.with { $0.metadata = Modelbox_FileMetadata(file) })
            while let chunk = try await NIOThreadPool.singleton.runIfActive({ try reader.next(maxBytes: Self.downloadChunkBytes) }) {
                try await response.write(.with { $0.chunks = chunk })
            }
        }
    }

    // MARK: Checkpoints

    func createCheckpoint(
        request: Modelbox_CreateCheckpointRequest, context: ServerContext
    ) async throws -> Modelbox_CreateCheckpointResponse {
        try await handling {
            let checkpoint = try await store.createCheckpoint(request.validated(limits))
            return .with {
                $0.checkpointID = checkpoint.id
                $0.createdAt = .init(nanoseconds: checkpoint.createdAt)
                $0.updatedAt = .init(nanoseconds: checkpoint.updatedAt)
            }
        }
    }

    func getCheckpoint(
        request: Modelbox_GetCheckpointRequest, context: ServerContext
    ) async throws -> Modelbox_GetCheckpointResponse {
        try await handling {
            guard let (checkpoint, files) = try await store.checkpoint(
                experimentID: request.experimentID, epoch: request.epoch)
            else {
                throw NotFoundError("experiment \(request.experimentID) has no checkpoint at epoch \(request.epoch)")
            }
            return .with { $0.checkpoint = Modelbox_Checkpoint(checkpoint, files: files) }
        }
    }

    func listCheckpoints(
        request: Modelbox_ListCheckpointsRequest, context: ServerContext
    ) async throws -> Modelbox_ListCheckpointsResponse {
        try await handling {
            let checkpoints = try await store.checkpoints(experimentID: request.experimentID)
            return .with { $0.checkpoints = checkpoints.map { Modelbox_Checkpoint($0.0, files: $0.1) } }
        }
    }

    // MARK: Models

    func createModel(
        request: Modelbox_CreateModelRequest, context: ServerContext
    ) async throws -> Modelbox_CreateModelResponse {
        try await handling {
            let (model, existed) = try await store.createModel(request.validated(limits))
            if !existed { changes.publish(.model(model, created: true)) }
            return .with {
                $0.id = model.id
                $0.createdAt = .init(nanoseconds: model.createdAt)
                $0.updatedAt = .init(nanoseconds: model.updatedAt)
            }
        }
    }

    func listModels(
        request: Modelbox_ListModelsRequest, context: ServerContext
    ) async throws -> Modelbox_ListModelsResponse {
        try await handling {
            let models = try await store.models(namespace: request.namespace)
            return .with { $0.models = models.map { Modelbox_Model($0.0, files: $0.1) } }
        }
    }

    func createModelVersion(
        request: Modelbox_CreateModelVersionRequest, context: ServerContext
    ) async throws -> Modelbox_CreateModelVersionResponse {
        try await handling {
            let version = try await store.createModelVersion(request.validated(limits))
            return .with {
                $0.modelVersion = version.id
                $0.createdAt = .init(nanoseconds: version.createdAt)
                $0.updatedAt = .init(nanoseconds: version.updatedAt)
            }
        }
    }

    func listModelVersions(
        request: Modelbox_ListModelVersionsRequest, context: ServerContext
    ) async throws -> Modelbox_ListModelVersionsResponse {
        try await handling {
            // The schema has room for one version: the latest.
            guard let (version, files, metadata) = try await store.latestModelVersion(modelID: request.model) else {
                return Modelbox_ListModelVersionsResponse()
            }
            return .with { $0.models = Modelbox_ModelVersion(version, files: files, metadata: metadata) }
        }
    }

    // MARK: Watching and the cluster

    func watchNamespace(
        request: Modelbox_WatchNamespaceRequest, response: RPCWriter<Modelbox_WatchNamespaceResponse>,
        context: ServerContext
    ) async throws {
        try await handling {
            try limits.checkName(request.namespace, "namespace", required: false)
            // The changes watched are the writes made through these services: a store changed
            // from elsewhere (the collector's, by forwarding) would send the past, then nothing.
            guard store.isWritable else {
                throw RPCError(
                    code: .unimplemented,
                    message: "WatchNamespace is not served here (\(store.location) changes by forwarding, not through this API): poll ListExperiments")
            }
            // Subscribe before reading the past, so nothing falls between the two.
            let live = changes.subscribe(namespace: request.namespace)
            let since = Int64(clamping: request.since).multipliedReportingOverflow(by: 1_000_000_000)
            let sinceNanos = since.overflow ? Int64.max : since.partialValue
            var past: [ObjectChange] = []
            for experiment in try await store.experiments(namespace: request.namespace)
            where experiment.updatedAt >= sinceNanos {
                past.append(.experiment(experiment, created: experiment.createdAt == experiment.updatedAt))
            }
            for (model, _) in try await store.models(namespace: request.namespace) where model.updatedAt >= sinceNanos {
                past.append(.model(model, created: model.createdAt == model.updatedAt))
            }
            past.sort { $0.at < $1.at }
            // A change published between subscribing and reading the past arrives twice: once
            // read, once live. Skip the live copy of what was already sent.
            var sent = Set<String>()
            for change in past {
                try await response.write(Self.message(change))
                sent.insert("\(change.id)@\(change.at)")
            }
            for try await change in live where !sent.contains("\(change.id)@\(change.at)") {
                try await response.write(Self.message(change))
            }
        }
    }

    static func message(_ change: ObjectChange) -> Modelbox_WatchNamespaceResponse {
        .with {
            $0.event = change.kind == .created ? .objectCreated : .objectUpdated
            $0.payload = change.payload.protobuf
        }
    }

    func getClusterMembers(
        request: Modelbox_GetClusterMembersRequest, context: ServerContext
    ) async throws -> Modelbox_GetClusterMembersResponse {
        .with { $0.members = [member] }
    }
}

/// The checksum a client sent with an upload: MD5 (32 hex digits, what ModelBox clients send)
/// and SHA-256 (64) are verified; anything else (empty, another digest) is recorded unverified,
/// as TrackArtifacts records it.
struct ExpectedChecksum {
    enum Kind { case none, md5, sha256 }
    let kind: Kind
    let hex: String

    init(_ checksum: String) {
        hex = checksum.lowercased()
        let isHex = hex.allSatisfy { $0.isHexDigit }
        switch (hex.count, isHex) {
        case (32, true): kind = .md5
        case (64, true): kind = .sha256
        default: kind = .none
        }
    }

    func verify(_ digests: ArtifactStore.Upload.Digests) throws {
        let actual: String
        switch kind {
        case .none: return
        case .md5: actual = digests.md5
        case .sha256: actual = digests.sha256
        }
        guard actual == hex else {
            throw ValidationError("checksum mismatch: the upload says \(hex), its bytes hash to \(actual); nothing was stored")
        }
    }
}
