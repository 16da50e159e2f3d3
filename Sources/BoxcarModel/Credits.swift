import Synchronization

/// A counting semaphore for batches in flight: the producer waits for an acknowledgement when
/// the window is full. Both ends of a Log stream use one: the client's SDK and the agent, which
/// bounds what one stream can hold in memory.
public final class Credits: Sendable {
    private struct State {
        var available: Int
        var waiters: [CheckedContinuation<Void, Error>] = []
        var failure: (any Error)?
    }

    private let state: Mutex<State>

    public init(_ window: Int) { state = Mutex(State(available: window)) }

    public func acquire() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            let result = state.withLock { state -> Result<Void, Error>? in
                if let failure = state.failure { return .failure(failure) }
                if state.available > 0 {
                    state.available -= 1
                    return .success(())
                }
                state.waiters.append(continuation)
                return nil
            }
            if let result { continuation.resume(with: result) }
        }
    }

    public func release() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Error>? in
            if state.waiters.isEmpty {
                state.available += 1
                return nil
            }
            return state.waiters.removeFirst()
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
        for waiter in waiters { waiter.resume(throwing: error) }
    }
}
