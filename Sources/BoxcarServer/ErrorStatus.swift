import BoxcarModel
import BoxcarStorage
import GRPCCore

/// Every refusal leaves the agent as a gRPC status with a message a person can act on.
func rpcError(_ error: any Error) -> RPCError {
    switch error {
    case let error as RPCError:
        return error
    case let error as ValidationError:
        return RPCError(code: .invalidArgument, message: error.message)
    case let error as LimitExceededError:
        return RPCError(code: .resourceExhausted, message: error.message)
    case let error as NotFoundError:
        return RPCError(code: .notFound, message: error.message)
    case let error as any StorageError where error.isOutOfSpace:
        return RPCError(code: .resourceExhausted, message: "the disk holding the database is full: \(error.message)")
    case let error as ArtifactError where error.isFull:
        return RPCError(code: .resourceExhausted, message: "the disk holding the artifacts is full: \(error)")
    case let error as ArtifactError:
        if case .tooLarge = error { return RPCError(code: .resourceExhausted, message: error.description) }
        return RPCError(code: .internalError, message: error.description)
    case is StoreClosedError:
        return RPCError(code: .unavailable, message: "the agent is shutting down")
    case is CancellationError:
        return RPCError(code: .cancelled, message: "the call was cancelled")
    default:
        return RPCError(code: .internalError, message: "\(error)")
    }
}

/// Runs `body`, turning any error into the status the client should see.
func handling<R>(_ body: () async throws -> R) async throws -> R {
    do {
        return try await body()
    } catch {
        throw rpcError(error)
    }
}
