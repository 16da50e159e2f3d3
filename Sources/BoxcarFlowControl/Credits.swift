import Synchronization

/// A counting semaphore for batches in flight: the producer waits for an acknowledgement when
/// the window is full. Both ends of a Log stream use one: the client's SDK and the agent, which
/// bounds what one stream can hold in memory.
public final class Credits: Sendable {
    private struct State {
        var available: Int
        var waiters = WaitQueue()
        var failure: (any Error)?
    }

    private let state: Mutex<State>

    public init(_ window: Int) { state = Mutex(State(available: window)) }

    /// Takes one credit, waiting for one; throws when the window failed or the task is cancelled.
    public func acquire() async throws {
        try await wait(in: state, queue: \.waiters) { state in
            if let failure = state.failure { return .failure(failure) }
            guard state.available > 0 else { return nil }
            state.available -= 1
            return .success(())
        }
    }

    /// Tasks parked waiting (for tests: a waiter is known to wait, not just about to).
    var waiting: Int { state.withLock { $0.waiters.count } }

    public func release() {
        let waiter = state.withLock { state -> WaitQueue.Waiter? in
            if state.waiters.isEmpty { state.available += 1 }
            return state.waiters.takeFirst()
        }
        waiter?.resume()
    }

    /// The stream ended in error: wake the producer so it stops.
    public func fail(_ error: any Error) {
        let waiters = state.withLock { state in
            state.failure = error
            return state.waiters.takeAll()
        }
        for waiter in waiters { waiter.resume(throwing: error) }
    }
}
