/// A store's own failure that a client may be told about in its own words: the services answer
/// RESOURCE_EXHAUSTED when `isOutOfSpace` (a full disk or quota), INTERNAL otherwise.
public protocol StorageError: Error, CustomStringConvertible {
    var isOutOfSpace: Bool { get }
    /// What went wrong, without the engine's error code.
    var message: String { get }
}

/// The store is closing: it commits what it accepted and takes nothing new.
public struct StoreClosedError: Error, CustomStringConvertible {
    public init() {}
    public var description: String { "the store is shutting down" }
}

/// A write reached a store opened for reading only (a database file read by the CLI, the
/// collector's PostgreSQL, which takes records only from agents forwarding).
public struct ReadOnlyError: Error, CustomStringConvertible {
    public var location: String
    public var reason: String?
    public init(location: String, reason: String? = nil) {
        self.location = location
        self.reason = reason
    }
    public var description: String { reason ?? "\(location) was opened read-only" }
}
