import Foundation
import Synchronization

/// How the collector fares, for its `--http` page: the agents forwarding now and how far behind
/// each says it is, rows and batches written, and PostgreSQL's failures.
public final class CollectorStatistics: Sendable {
    public struct Agent: Sendable, Equatable {
        public var agentID: UUID
        public var host: String
        /// Records the agent committed that this collector has not written yet, as of its last
        /// batch, and how long its oldest unacknowledged record had waited then.
        public var records: Int64 = 0
        public var seconds: Double = 0
    }

    public struct Counts: Sendable, Equatable {
        /// By stream: an agent reconnecting has two for a moment.
        public var agents: [Int: Agent] = [:]
        public var rows = 0
        public var batches = 0
        public var postgresErrors = 0
        /// What PostgreSQL said when it last failed a write, until a later batch is written:
        /// what /readyz reports.
        public var postgresFault: String?
    }

    private let counts = Mutex(Counts())
    private let streams = Atomic<Int>(0)

    public init() {}

    public var current: Counts { counts.withLock { $0 } }

    /// A stream's agent, until `disconnected` with the number returned.
    func connected(_ agentID: UUID, host: String) -> Int {
        let stream = streams.add(1, ordering: .relaxed).newValue
        counts.withLock { $0.agents[stream] = Agent(agentID: agentID, host: host) }
        return stream
    }

    func disconnected(_ stream: Int) {
        _ = counts.withLock { $0.agents.removeValue(forKey: stream) }
    }

    func wrote(stream: Int, rows: Int, agentLastSeq: UInt64, throughSeq: UInt64, agentLagSeconds: Double) {
        counts.withLock {
            $0.rows += rows
            $0.batches += 1
            $0.postgresFault = nil
            $0.agents[stream]?.records = Int64(clamping: agentLastSeq - min(throughSeq, agentLastSeq))
            $0.agents[stream]?.seconds = agentLagSeconds
        }
    }

    func postgresFailed(_ reason: String) {
        counts.withLock {
            $0.postgresErrors += 1
            $0.postgresFault = reason
        }
    }
}
