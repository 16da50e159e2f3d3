import Synchronization

/// Bytes of accepted but not yet committed writes the agent may hold, shared by every stream:
/// when clients send faster than the disk takes, a stream waits here (and, not reading, makes
/// HTTP/2 flow control slow its client) instead of the agent buffering without end. Waiters are
/// served in order; a request larger than the whole budget waits for all of it.
public final class ByteBudget: Sendable {
    private struct Waiter {
        var id: UInt64
        var bytes: Int
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var available: Int
        var waiters: [Waiter] = []
        var nextID: UInt64 = 0
    }

    public let capacity: Int
    private let state: Mutex<State>

    public init(capacity: Int) {
        self.capacity = capacity
        state = Mutex(State(available: capacity))
    }

    /// The bytes held now.
    public var inUse: Int { capacity - state.withLock { $0.available } }

    /// Takes `bytes` (at most the capacity), waiting for them; throws when the task is cancelled.
    public func acquire(_ bytes: Int) async throws {
        let wanted = min(max(bytes, 0), capacity)
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let ready = state.withLock { state -> Bool in
                    if state.waiters.isEmpty && state.available >= wanted {
                        state.available -= wanted
                        return true
                    }
                    state.waiters.append(Waiter(id: id, bytes: wanted, continuation: continuation))
                    return false
                }
                if ready { continuation.resume() }
            }
        } onCancel: {
            let cancelled = state.withLock { state -> Waiter? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index)
            }
            cancelled?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Gives back what `acquire(bytes)` took.
    public func release(_ bytes: Int) {
        let returned = min(max(bytes, 0), capacity)
        let woken = state.withLock { state -> [Waiter] in
            state.available += returned
            var woken: [Waiter] = []
            while let first = state.waiters.first, first.bytes <= state.available {
                state.available -= first.bytes
                woken.append(state.waiters.removeFirst())
            }
            return woken
        }
        for waiter in woken { waiter.continuation.resume() }
    }
}

extension ByteBudget {
    /// What one holder (a stream) took and has not given back, so that a holder that ends early
    /// can give back all of it.
    public final class Account: Sendable {
        private let budget: ByteBudget
        private let held = Mutex(0)

        public init(_ budget: ByteBudget) { self.budget = budget }

        public func acquire(_ bytes: Int) async throws {
            try await budget.acquire(bytes)
            held.withLock { $0 += bytes }
        }

        public func release(_ bytes: Int) {
            held.withLock { $0 -= bytes }
            budget.release(bytes)
        }

        /// Gives back whatever is still held.
        public func close() {
            budget.release(held.withLock { bytes in
                defer { bytes = 0 }
                return bytes
            })
        }
    }
}

extension IngestBatch {
    /// About what the batch holds in memory while it waits for its commit: 24 bytes a point in
    /// the columns and as much again for the message it was decoded from, plus the text.
    public var estimatedBytes: Int {
        var bytes = 0
        for entry in series {
            bytes += entry.columns.count * 48 + entry.key.utf8.count + entry.parentID.utf8.count
            for value in entry.columns.nonFloat.values {
                switch value {
                case .string(let text): bytes += text.utf8.count * 2
                case .bytes(let data): bytes += data.count * 2
                case .float: break
                }
            }
        }
        return bytes + events.count * 512 + metadata.count * 1024
    }
}
