import BoxcarAPI
import BoxcarStorage
import Foundation
import GRPCCore
import Logging
import NIOPosix
import PostgresNIO

/// `boxcar.v1.Collector/Forward`: an agent's hello, then its batches, each answered once the
/// PostgreSQL transaction holding it (and the agent's cursor) committed.
struct CollectorService: Boxcar_V1_Collector.ServiceProtocol {
    let writer: BatchWriter
    let artifacts: ArtifactStore
    /// `--token-file`: which named token a stream carries (TokenInterceptor has checked it).
    let tokens: TokenFile?
    let version: String
    let logger: Logger
    let statistics: CollectorStatistics

    /// The record versions this collector reads: every one agents have sent so far.
    static let recordVersions: ClosedRange<UInt32> = 1...4

    func forward(
        request: StreamingServerRequest<Boxcar_V1_ForwardRequest>, context: ServerContext
    ) async throws -> StreamingServerResponse<Boxcar_V1_ForwardResponse> {
        let token = tokens.flatMap { tokens in
            request.metadata[stringValues: "authorization"].lazy.compactMap { tokens.entry(forBearer: $0)?.name }.first
        }
        // TokenInterceptor found the token; gone now, the file changed in between (revoked).
        if tokens != nil && token == nil {
            throw RPCError(code: .unauthenticated, message: "the token was revoked from the collector's token file")
        }
        return StreamingServerResponse(metadata: [:]) { writer in
            try await forward(request.messages, response: writer, token: token)
            return [:]
        }
    }

    /// One agent's stream. `token`: the name of the token it carries (nil without a token file).
    private func forward(
        _ request: RPCAsyncSequence<Boxcar_V1_ForwardRequest, any Error>, response: RPCWriter<Boxcar_V1_ForwardResponse>,
        token: String?
    ) async throws {
        var messages = request.makeAsyncIterator()
        guard let first = try await messages.next(), case .hello(let hello)? = first.kind else {
            throw RPCError(code: .invalidArgument, message: "a Forward stream starts with a ForwardHello")
        }
        guard let agentID = UUID(uuidString: hello.agentID) else {
            throw RPCError(code: .invalidArgument, message: "agent_id \(hello.agentID) is not a UUID")
        }
        guard Self.recordVersions.contains(hello.recordVersion) else {
            throw RPCError(
                code: .failedPrecondition,
                message: "record version \(hello.recordVersion) is not one this collector reads (\(Self.recordVersions.lowerBound)…\(Self.recordVersions.upperBound)); upgrade the collector")
        }
        let cursor = try await postgres { try await writer.welcome(agentID: agentID, hello: hello, token: token) }
        let stream = statistics.connected(agentID, host: hello.labels["host"] ?? hello.hostName)
        defer { statistics.disconnected(stream) }
        logger.info("an agent is forwarding", metadata: [
            "agent_id": "\(agentID)", "host": "\(hello.labels["host"] ?? hello.hostName)", "cursor": "\(cursor)",
        ])
        try await response.write(.with {
            $0.welcome = .with {
                $0.cursor = UInt64(cursor)
                $0.collectorVersion = version
            }
        })
        let staging = Staging(artifacts: artifacts)
        defer { staging.abort() }
        while let message = try await messages.next() {
            switch message.kind {
            case .chunk(let chunk):
                // Writes, fsyncs and renames block on the disk: on NIO's blocking pool, never on
                // the concurrency pool's few threads, which every stream's acknowledgements need.
                try await NIOThreadPool.singleton.runIfActive { try staging.add(chunk) }
            case .batch(let batch):
                let refused = try await postgres { try await writer.write(agentID: agentID, recordVersion: hello.recordVersion, batch: batch) }
                statistics.wrote(
                    stream: stream, rows: batch.records.count - refused.count, agentLastSeq: batch.agentLastSeq,
                    throughSeq: batch.throughSeq, agentLagSeconds: batch.agentLagSeconds)
                for record in refused {
                    logger.warning("refused a malformed record", metadata: [
                        "agent_id": "\(agentID)", "seq": "\(record.seq)", "reason": "\(record.reason)",
                    ])
                }
                try await response.write(.with {
                    $0.ack = .with {
                        $0.batchID = batch.batchID
                        $0.throughSeq = batch.throughSeq
                        $0.refused = refused
                    }
                })
            case .hello:
                throw RPCError(code: .invalidArgument, message: "a second ForwardHello on one stream")
            case nil:
                throw RPCError(code: .invalidArgument, message: "a message of a kind this collector does not know")
            }
        }
    }

    /// Runs a PostgreSQL operation; its failure reaches the agent as UNAVAILABLE (it backs off
    /// and sends again), a batch that does not follow the cursor as FAILED_PRECONDITION (it
    /// reconnects and starts from the cursor), a refusal of the batch itself as INVALID_ARGUMENT.
    private func postgres<R: Sendable>(_ body: () async throws -> R) async throws -> R {
        do {
            return try await body()
        } catch {
            // What the transaction's body threw comes wrapped in the driver's transaction error.
            let inner = (error as? PostgresTransactionError)?.closureError ?? error
            if let gap = inner as? BatchWriter.Gap {
                throw RPCError(code: .failedPrecondition, message: gap.description)
            }
            if let refusal = inner as? BatchError {
                throw RPCError(code: .invalidArgument, message: refusal.description)
            }
            if let mismatch = inner as? BatchWriter.TokenMismatch {
                throw RPCError(code: .permissionDenied, message: mismatch.description)
            }
            let reason = describePostgres(error)
            statistics.postgresFailed(reason)
            logger.warning("PostgreSQL failed a write; the agent will send it again", metadata: ["error": "\(reason)"])
            throw RPCError(code: .unavailable, message: "the collector cannot write to PostgreSQL: \(reason)")
        }
    }
}

/// The bytes of uploaded files arriving before the batch that records them: written to the
/// artifacts directory's `incoming/`, checked against their SHA-256 and moved into place (durably)
/// once whole, before that batch's transaction commits.
/// One stream's: its calls come one at a time, in order.
final class Staging: @unchecked Sendable {
    let artifacts: ArtifactStore
    private var current: (blob: String, upload: ArtifactStore.Upload)?

    init(artifacts: ArtifactStore) { self.artifacts = artifacts }

    func add(_ chunk: Boxcar_V1_FileChunk) throws {
        guard chunk.blob.count == 64, chunk.blob.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else {
            throw RPCError(code: .invalidArgument, message: "a file chunk's blob must be a lowercase SHA-256, not \(chunk.blob)")
        }
        if chunk.offset == 0 {
            abort()
            current = (chunk.blob, try artifacts.beginUpload(maxBytes: Int64(clamping: chunk.size)))
        }
        guard let (blob, upload) = current, blob == chunk.blob, UInt64(upload.size) == chunk.offset else {
            throw RPCError(code: .invalidArgument, message: "a file chunk at offset \(chunk.offset) of \(chunk.blob) does not follow the bytes sent before it")
        }
        do {
            try upload.write(chunk.data)
        } catch {
            abort()
            throw RPCError(code: .resourceExhausted, message: "cannot store a file's bytes: \(error)")
        }
        guard UInt64(upload.size) == chunk.size else { return }
        current = nil
        if upload.digests().sha256 == blob {
            try upload.commit(sha256: blob)
        } else {
            // Left out: the file record that follows is refused for lack of its bytes.
            upload.abort()
        }
    }

    func abort() {
        current?.upload.abort()
        current = nil
    }
}

/// A PostgreSQL error as a person reads it: its message and SQLSTATE, not the driver's dump.
func describePostgres(_ error: any Error) -> String {
    if let transaction = error as? PostgresTransactionError {
        if let inner = transaction.closureError ?? transaction.commitError ?? transaction.beginError {
            return describePostgres(inner)
        }
    }
    if let psql = error as? PSQLError {
        if let message = psql.serverInfo?[.message] {
            return "\(message) (SQLSTATE \(psql.serverInfo?[.sqlState] ?? "?"))"
        }
        if let underlying = psql.underlying { return "\(psql.code): \(underlying)" }
        return "\(psql.code)"
    }
    return "\(error)"
}
