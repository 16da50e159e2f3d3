import BoxcarAPI
import GRPCCore
import Synchronization

extension AgentClient {
    /// Streams `count` batches through `boxcar.v1.Agent/Log`, keeping at most `window` of them
    /// unacknowledged, and returns the acknowledgements in order. `makeBatch(i)` builds batch `i`;
    /// its batch_id is set to `i`.
    public func log(
        count: Int, window: Int = 16, makeBatch: @escaping @Sendable (Int) -> Boxcar_V1_LogBatch
    ) async throws -> [Boxcar_V1_LogAck] {
        let credits = Credits(window)
        return try await agent.log(
            requestProducer: { writer in
                for index in 0..<count {
                    try await credits.acquire()
                    var batch = makeBatch(index)
                    batch.batchID = UInt64(index)
                    try await writer.write(batch)
                }
            },
            onResponse: { response in
                var acks: [Boxcar_V1_LogAck] = []
                acks.reserveCapacity(count)
                do {
                    for try await ack in response.messages {
                        acks.append(ack)
                        credits.release()
                    }
                } catch {
                    credits.fail(error)
                    throw error
                }
                return acks
            })
    }
}

/// A counting semaphore for batches in flight: the producer waits for an acknowledgement when
/// the window is full.
final class Credits: Sendable {
    private struct State {
        var available: Int
        var waiters: [CheckedContinuation<Void, Error>] = []
        var failure: (any Error)?
    }

    private let state: Mutex<State>

    init(_ window: Int) { state = Mutex(State(available: window)) }

    func acquire() async throws {
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

    func release() {
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
    func fail(_ error: any Error) {
        let waiters = state.withLock { state in
            state.failure = error
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(throwing: error) }
    }
}
