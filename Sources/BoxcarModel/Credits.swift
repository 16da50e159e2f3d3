import Synchronization

/// A counting semaphore for batches in flight: the producer waits for an acknowledgement when
/// the window is full. Both ends of a Log stream use one: the client's SDK and the agent, which
/// bounds what one stream can hold in memory.
public final class Credits: Sendable {
    private struct State {
        var available: Int
        var waiters: [(id: UInt64, continuation: CheckedContinuation<Void, Error>)] = []
        var nextID: UInt64 = 0
        var failure: (any Error)?
    }

    private let state: Mutex<State>

    public init(_ window: Int) { state = Mutex(State(available: window)) }

    /// Takes one credit, waiting for one; throws when the window failed or the task is cancelled.
    public func acquire() async throws {
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
                // Checked under the lock `onCancel` takes, so a cancellation is never missed.
                let result = state.withLock { state -> Result<Void, Error>? in
                    if let failure = state.failure { return .failure(failure) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    if state.available > 0 {
                        state.available -= 1
                        return .success(())
                    }
                    state.waiters.append((id, continuation))
                    return nil
                }
                if let result { continuation.resume(with: result) }
            }
        } onCancel: {
            let cancelled = state.withLock { state -> CheckedContinuation<Void, Error>? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index).continuation
            }
            cancelled?.resume(throwing: CancellationError())
        }
    }

    public func release() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Error>? in
            if state.waiters.isEmpty {
                state.available += 1
                return nil
            }
            return state.waiters.removeFirst().continuation
        }
        waiter?.resume()
    }

    /// The stream ended in error: wake the producer so it stops.
    public func fail(_ error: any Error) {
        let waiters = state.withLock { state in
            state.failure = error
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.continuation.resume(throwing: error) }
    }
}
