import BoxcarModel
import BoxcarStorage
import GRPCCore

/// Why a call was refused, sent in the trailing metadata as `boxcar-reason` so that a client acts
/// on it without reading the message: a full disk and a limit are both RESOURCE_EXHAUSTED, but
/// one is worth retrying and the other never is.
public enum RefusalReason: String, Sendable, CaseIterable {
    /// Bad input: the same request is refused again.
    case invalidArgument = "invalid-argument"
    /// An id that names nothing: refused again until it exists.
    case notFound = "not-found"
    /// Over a limit on what is stored or sent: refused again.
    case limit
    /// The disk holding the database or the artifacts is full: worth retrying once it has room.
    case diskFull = "disk-full"
    /// The agent is stopping: worth retrying with the next agent.
    case shuttingDown = "shutting-down"
    /// Clients hold as many connections and open files as the agent's descriptor limit allows:
    /// worth retrying once some close.
    case busy

    public static let metadataKey = "boxcar-reason"
}

/// Every refusal leaves the agent as a gRPC status with a message a person can act on, and a
/// reason a program can act on.
func rpcError(_ error: any Error) -> RPCError {
    switch error {
    case let error as RPCError:
        return error
    case let error as ValidationError:
        return refusal(.invalidArgument, error.message)
    case let error as LimitExceededError:
        return refusal(.limit, error.message)
    case let error as NotFoundError:
        return refusal(.notFound, error.message)
    case let error as any StorageError where error.isOutOfSpace:
        return refusal(.diskFull, "the disk holding the database is full: \(error.message)")
    case let error as ArtifactError where error.isFull:
        return refusal(.diskFull, "the disk holding the artifacts is full: \(error)")
    case let error as ArtifactError where error.isOutOfDescriptors:
        return refusal(.busy, "the agent has no file descriptor left for this file: \(error)")
    case let error as ArtifactError:
        if case .tooLarge = error { return refusal(.limit, error.description) }
        return RPCError(code: .internalError, message: error.description)
    case let error as ReadOnlyError:
        return RPCError(code: .failedPrecondition, message: error.description)
    case is StoreClosedError:
        return refusal(.shuttingDown, "the agent is shutting down")
    case is CancellationError:
        return RPCError(code: .cancelled, message: "the call was cancelled")
    default:
        return RPCError(code: .internalError, message: "\(error)")
    }
}

func refusal(_ reason: RefusalReason, _ message: String) -> RPCError {
    let code: RPCError.Code
    switch reason {
    case .invalidArgument: code = .invalidArgument
    case .notFound: code = .notFound
    case .limit, .diskFull, .busy: code = .resourceExhausted
    case .shuttingDown: code = .unavailable
    }
    return RPCError(code: code, message: message, metadata: [RefusalReason.metadataKey: .string(reason.rawValue)])
}

/// Runs `body`, turning any error into the status the client should see.
func handling<R>(_ body: () async throws -> R) async throws -> R {
    do {
        return try await body()
    } catch {
        throw rpcError(error)
    }
}
