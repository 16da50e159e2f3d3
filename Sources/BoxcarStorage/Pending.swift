import Synchronization

/// The result of a submitted write, available once its transaction committed (or failed).
public final class Pending<R: Sendable>: Sendable {
    private enum State {
        case waiting([CheckedContinuation<R, Error>])
        case done(Result<R, Error>)
    }

    private let state = Mutex<State>(.waiting([]))

    package init() {}

    /// Called once by the store that owns the write; later calls are ignored.
    package func complete(_ result: Result<R, Error>) {
        let waiters = state.withLock { state -> [CheckedContinuation<R, Error>] in
            guard case .waiting(let waiters) = state else { return [] }
            state = .done(result)
            return waiters
        }
        for waiter in waiters { waiter.resume(with: result) }
    }

    public func value() async throws -> R {
        try await withCheckedThrowingContinuation { continuation in
            let done = state.withLock { state -> Result<R, Error>? in
                switch state {
                case .done(let result): return result
                case .waiting(let waiters):
                    state = .waiting(waiters + [continuation])
                    return nil
                }
            }
            if let done { continuation.resume(with: done) }
        }
    }
}

/// Writes that must stop at the first failure, such as the batches of one Log stream: once one
/// fails, the store refuses those after it without storing them.
public final class WriteChain: Sendable {
    private let broken = Atomic<Bool>(false)

    public init() {}

    public var isBroken: Bool { broken.load(ordering: .acquiring) }

    package func breakChain() { broken.store(true, ordering: .releasing) }

    public struct Broken: Error, CustomStringConvertible {
        public init() {}
        public var description: String { "an earlier batch of this stream was refused" }
    }
}
