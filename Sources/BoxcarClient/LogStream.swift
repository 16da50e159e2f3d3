import BoxcarAPI
import GRPCCore
import BoxcarFlowControl
import BoxcarModel

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
