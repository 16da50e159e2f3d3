import Logging
import PostgresNIO
import Synchronization

/// A PostgreSQL transaction that survives the server going away in the middle of it.
///
/// postgres-nio 1.33.2 writes a query to its channel without a promise for the write: a query
/// issued on a connection the server has just closed is never answered, and the task waiting
/// for it waits for ever. Its own `withTransaction` does exactly that when a statement fails
/// because the server shut down: it sends ROLLBACK on the closed connection (measured: a restart
/// of PostgreSQL under forwarding hung the collector's writes 1 time in 3). So each statement here
/// first checks the connection is open (a closed one ends the transaction, which PostgreSQL has
/// rolled back already), and the whole transaction has a deadline, for a close that lands
/// between that check and the write.
struct Transaction {
    let connection: PostgresConnection
    let logger: Logger

    struct ConnectionLost: Error, CustomStringConvertible {
        var description: String { "the connection to PostgreSQL closed during the transaction; it was rolled back" }
    }

    struct DeadlinePassed: Error, CustomStringConvertible {
        let limit: Duration
        var description: String { "a transaction got no answer from PostgreSQL within \(limit); given up (the connection is lost)" }
    }

    /// One statement of the transaction.
    @discardableResult
    func query(_ query: PostgresQuery) async throws -> PostgresRowSequence {
        guard !connection.isClosed else { throw ConnectionLost() }
        return try await connection.query(query, logger: logger)
    }

    /// Runs `body` in a transaction on a pooled connection: committed if it returns, rolled back
    /// if it throws (or by PostgreSQL itself, when the connection is lost), given up after
    /// `deadline`.
    static func run<R: Sendable>(
        _ client: PostgresClient, logger: Logger, deadline: Duration = .seconds(60),
        _ body: @escaping @Sendable (Transaction) async throws -> R
    ) async throws -> R {
        try await withDeadline(deadline) {
            try await client.withConnection { connection in
                let transaction = Transaction(connection: connection, logger: logger)
                try await transaction.query("BEGIN")
                // A lock held by a writer that went away, or a statement stuck on the server, ends
                // the transaction (and the agent sends again) well before the deadline abandons it.
                try await transaction.query("SET LOCAL lock_timeout = '20s'")
                try await transaction.query("SET LOCAL statement_timeout = '40s'")
                let result: R
                do {
                    result = try await body(transaction)
                } catch {
                    if !connection.isClosed { _ = try? await connection.query("ROLLBACK", logger: logger) }
                    throw error
                }
                try await transaction.query("COMMIT")
                return result
            }
        }
    }
}

/// `body`'s result, or DeadlinePassed once `limit` has passed without one. A body that never
/// ends (the hang above) is left behind: it cannot be cancelled, as nothing it waits on hears
/// cancellation.
func withDeadline<R: Sendable>(
    _ limit: Duration, _ body: @escaping @Sendable () async throws -> R
) async throws -> R {
    let waiting = Mutex<CheckedContinuation<R, any Error>?>(nil)
    let take: @Sendable () -> CheckedContinuation<R, any Error>? = { waiting.withLock { $0.take() } }
    return try await withCheckedThrowingContinuation { continuation in
        waiting.withLock { $0 = continuation }
        let timer = Task {
            try? await Task.sleep(for: limit)
            guard !Task.isCancelled else { return }
            take()?.resume(throwing: Transaction.DeadlinePassed(limit: limit))
        }
        Task {
            let result = await Result { try await body() }
            timer.cancel()
            take()?.resume(with: result)
        }
    }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
