#if canImport(Glibc)
import Glibc
#endif
import GRPCNIOTransportHTTP2Posix
import Logging
import NIOCore
import Synchronization

/// What the clients of one agent (or collector) may hold, whatever they do: connections in all,
/// streams on one connection, and how long a connection may sit without a call.
public struct ConnectionLimits: Sendable {
    /// Connections across every listener; the next one is closed as it is accepted. Held under the
    /// descriptor limit by `descriptorReserve`, so that clients never take the descriptors the store
    /// and the sensors need (20,000 held connections once made sampling fail with SQLite error 14).
    public var maxConnections: Int
    /// A connection with no call open this long is closed (an HTTP/2 GOAWAY; clients reconnect at
    /// their next call). A connection that never sends its HTTP/2 preface has no call either.
    public var idleTimeout: Duration
    /// Announced in SETTINGS_MAX_CONCURRENT_STREAMS, so that a client queues its 101st call instead of
    /// opening it and having the connection and its other 100 calls torn down. NIO's HTTP/2 holds a
    /// connection to 100 whatever is announced; announcing more would be a promise it does not keep.
    public static let maxConcurrentStreams = 100
    /// Descriptors kept for the agent's own work.
    public static let descriptorReserve = 256

    public init(maxConnections: Int = 1024, idleTimeout: Duration = .seconds(300)) {
        self.maxConnections = maxConnections
        self.idleTimeout = idleTimeout
    }

    /// `maxConnections`, lowered where the process's descriptor limit leaves less room.
    public var effectiveMaxConnections: Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < rlim_t(Int.max) else {
            return maxConnections
        }
        return max(1, min(maxConnections, Int(limit.rlim_cur) - Self.descriptorReserve))
    }
}

/// Counts the connections of every listener it is given to and closes those past the limit as
/// they are accepted (saying so in the log at most once every 10 s), and those that open no call
/// within the idle timeout: the transport's own idle timer starts with the first call, so a
/// connection that never sends its HTTP/2 preface would be held for ever.
public final class ConnectionGate: Sendable {
    public let limit: Int
    public let idleTimeout: Duration
    private let open = Atomic<Int>(0)
    /// The connections that have opened a stream, by identity, while they are open.
    private let called = Mutex<Set<ObjectIdentifier>>([])
    private let refused = Atomic<Int>(0)
    private let lastWarning = Mutex<ContinuousClock.Instant?>(nil)
    private let logger: Logger

    public init(limits: ConnectionLimits, logger: Logger) {
        self.limit = limits.effectiveMaxConnections
        self.idleTimeout = limits.idleTimeout
        self.logger = logger
    }

    public var openConnections: Int { open.load(ordering: .relaxed) }
    public var refusedConnections: Int { refused.load(ordering: .relaxed) }

    func admit(_ channel: any Channel) -> EventLoopFuture<Void> {
        let count = open.add(1, ordering: .relaxed).newValue
        let identity = ObjectIdentifier(channel)
        let silent = channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(idleTimeout / .nanoseconds(1)))) {
            if !self.called.withLock({ $0.contains(identity) }) { channel.close(promise: nil) }
        }
        channel.closeFuture.whenComplete { _ in
            silent.cancel()
            self.called.withLock { _ = $0.remove(identity) }
            self.open.subtract(1, ordering: .relaxed)
        }
        guard count > limit else { return channel.eventLoop.makeSucceededVoidFuture() }
        let total = refused.add(1, ordering: .relaxed).newValue
        let now = ContinuousClock.now
        let warn = lastWarning.withLock { last in
            guard last.map({ now - $0 >= .seconds(10) }) ?? true else { return false }
            last = now
            return true
        }
        if warn {
            logger.warning("refusing connections: clients hold the most this agent takes (--max-connections, lowered to fit the descriptor limit)", metadata: [
                "max_connections": "\(limit)", "refused_so_far": "\(total)",
            ])
        }
        // This runs before the connection is registered with its event loop, where a close can be
        // lost: the handler closes it once it is active, before HTTP/2 hears of it.
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(CloseWhenActive(), position: .first)
        }
    }

    /// A stream opened on a connection: it has called, and the transport's idle timer now keeps it.
    func opened(_ stream: any Channel) -> EventLoopFuture<Void> {
        if let connection = stream.parent {
            let identity = ObjectIdentifier(connection)
            called.withLock { _ = $0.insert(identity) }
        }
        return stream.eventLoop.makeSucceededVoidFuture()
    }
}

/// Closes its connection as soon as it is active, passing nothing on.
private final class CloseWhenActive: ChannelInboundHandler, Sendable {
    typealias InboundIn = NIOAny

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { context.close(promise: nil) }
    }

    func channelActive(context: ChannelHandlerContext) {
        context.close(promise: nil)
    }
}
