// BoxcarFlowControl: waiting for room, so that a client faster than the disk is slowed, not
// buffered. `Credits` bounds one stream's batches in flight, `ByteBudget` the bytes held across
// every stream; both park waiters on a `WaitQueue` that cancellation and failure wake. Used by
// the agent's Log service and by the Swift client's stream. Knows nothing of gRPC or storage.

import BoxcarModel
import Synchronization

/// Bytes of requests and not yet committed writes the agent may hold, shared by every stream:
/// when clients send faster than the disk takes, a stream waits here before it reads its next
/// message (and, not reading, makes HTTP/2 flow control slow its client) instead of the agent
/// buffering without end.
///
/// A message already begun is counted at once, even past the capacity: a stream that waited while
/// holding a share could wait for ever. Only starting the next message waits, and a waiter holds
/// nothing.
public final class ByteBudget: Sendable {
    private struct State {
        var available: Int
        var waiters = WaitQueue()
    }

    public let capacity: Int
    private let state: Mutex<State>

    public init(capacity: Int) {
        self.capacity = capacity
        state = Mutex(State(available: capacity))
    }

    /// The bytes counted now (may exceed the capacity).
    public var inUse: Int { capacity - state.withLock { $0.available } }

    /// Counts `bytes` if there is room now (even past the capacity, as `take`); false, counting
    /// nothing, when the budget is spent. Asked and counted under one lock, so that two streams
    /// cannot both see the last room.
    public func takeIfRoom(_ bytes: Int) -> Bool {
        state.withLock { state in
            guard state.available > 0 else { return false }
            state.available -= max(bytes, 0)
            return true
        }
    }

    /// Waits while the budget is spent; throws when the task is cancelled.
    public func waitForRoom() async throws {
        try await wait(in: state, queue: \.waiters) { $0.available > 0 ? .success(()) : nil }
    }

    /// Tasks parked waiting (for tests: a waiter is known to wait, not just about to).
    var waiting: Int { state.withLock { $0.waiters.count } }

    /// Counts `bytes` without waiting.
    public func take(_ bytes: Int) {
        state.withLock { $0.available -= max(bytes, 0) }
    }

    /// Gives back what `take(bytes)` counted; wakes the waiters once there is room.
    public func release(_ bytes: Int) {
        let woken = state.withLock { state -> [WaitQueue.Waiter] in
            state.available += max(bytes, 0)
            return state.available > 0 ? state.waiters.takeAll() : []
        }
        for waiter in woken { waiter.resume() }
    }
}

extension ByteBudget {
    /// What one holder (a stream) counted and has not given back, so that a holder that ends
    /// early gives back all of it.
    public final class Account: Sendable {
        private let budget: ByteBudget
        private let held = Mutex(0)

        public init(_ budget: ByteBudget) { self.budget = budget }

        public func waitForRoom() async throws { try await budget.waitForRoom() }

        public func take(_ bytes: Int) {
            held.withLock { $0 += bytes }
            budget.take(bytes)
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
    /// the columns and as much again for the message it was decoded from, plus the text. Events and
    /// metadata count four times their JSON: the decoded message, the tree of values (heap strings
    /// and dictionaries, about twice the text) and the text written for the commit.
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
        for event in events { bytes += 256 + event.name.utf8.count + event.source.utf8.count + event.parentID.utf8.count }
        for update in metadata { bytes += 256 + update.parentID.utf8.count }
        return bytes + metadataTextBytes * 4
    }
}
