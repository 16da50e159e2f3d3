import Synchronization

/// Tasks waiting on state kept behind a Mutex (a window of credits, a byte budget), each parked
/// under an id so that its task's cancellation can find it and take it out.
struct WaitQueue {
    typealias Waiter = CheckedContinuation<Void, any Error>
    private var nextID: UInt64 = 0
    private var parked: [(id: UInt64, waiter: Waiter)] = []

    var isEmpty: Bool { parked.isEmpty }
    var count: Int { parked.count }

    mutating func newID() -> UInt64 {
        nextID += 1
        return nextID
    }

    mutating func park(_ id: UInt64, _ waiter: Waiter) {
        parked.append((id, waiter))
    }

    mutating func take(_ id: UInt64) -> Waiter? {
        parked.firstIndex { $0.id == id }.map { parked.remove(at: $0).waiter }
    }

    mutating func takeFirst() -> Waiter? {
        parked.isEmpty ? nil : parked.removeFirst().waiter
    }

    mutating func takeAll() -> [Waiter] {
        defer { parked.removeAll() }
        return parked.map(\.waiter)
    }
}

/// Waits until `ready`, asked under the lock, answers: at once with its result, or, when it
/// answers nil, once a waker resumes the waiter parked in `queue`. A cancelled task is taken out
/// and throws CancellationError. `ready` is asked under the lock that the cancellation takes, so
/// a cancellation either finds the waiter parked or is seen here, never neither.
func wait<State>(
    in mutex: borrowing Mutex<State>, queue: WritableKeyPath<State, WaitQueue> & Sendable,
    until ready: (inout State) -> Result<Void, any Error>?
) async throws {
    let id = mutex.withLock { $0[keyPath: queue].newID() }
    try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { (waiter: WaitQueue.Waiter) in
            let answer = mutex.withLock { state -> Result<Void, any Error>? in
                if Task.isCancelled { return .failure(CancellationError()) }
                if let answer = ready(&state) { return answer }
                state[keyPath: queue].park(id, waiter)
                return nil
            }
            if let answer { waiter.resume(with: answer) }
        }
    } onCancel: {
        mutex.withLock { $0[keyPath: queue].take(id) }?.resume(throwing: CancellationError())
    }
}
