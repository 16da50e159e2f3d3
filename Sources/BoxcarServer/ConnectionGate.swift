#if canImport(Glibc)
import Glibc
#endif
import BoxcarFlowControl
import GRPCCore
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
    /// A stream whose client takes none of what it has to send for this long is ended: its handler
    /// stops with DEADLINE_EXCEEDED and the stream is reset, freeing what it held. So is a stream
    /// whose client sends nothing of a message it began for this long.
    public var stallTimeout: Duration
    /// Announced in SETTINGS_MAX_CONCURRENT_STREAMS, so that a client queues its 101st call instead of
    /// opening it and having the connection and its other 100 calls torn down. NIO's HTTP/2 holds a
    /// connection to 100 whatever is announced; announcing more would be a promise it does not keep.
    public static let maxConcurrentStreams = 100
    /// Descriptors kept for the agent's own work.
    public static let descriptorReserve = 256

    public init(maxConnections: Int = 1024, idleTimeout: Duration = .seconds(300), stallTimeout: Duration = .seconds(60)) {
        self.maxConnections = maxConnections
        self.idleTimeout = idleTimeout
        self.stallTimeout = stallTimeout
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

/// The file descriptors clients make the agent hold: their connections, and the artifacts files
/// their uploads and downloads keep open. Together they stay under the process's descriptor limit
/// less `ConnectionLimits.descriptorReserve`, so that the store and the sensors always have theirs
/// (20,000 held connections once made sampling fail with SQLite error 14).
public final class ClientDescriptors: Sendable {
    public let limit: Int
    private let held = Atomic<Int>(0)

    public init(limit: Int) {
        self.limit = limit
    }

    public var inUse: Int { held.load(ordering: .relaxed) }

    /// Counts one more (a connection is counted even past the limit, until it is closed); returns
    /// how many are held now.
    func add() -> Int { held.add(1, ordering: .relaxed).newValue }

    func remove() { held.subtract(1, ordering: .relaxed) }

    /// One more for a file a call opens, unless clients hold the limit already: the call is then
    /// refused with RESOURCE_EXHAUSTED (reason `busy`), and the descriptor stays the agent's.
    func takeForFile() throws {
        guard add() <= limit else {
            remove()
            throw refusal(.busy, "the agent holds as many client connections and open files as it gives clients (\(limit): --max-connections, or the descriptor limit less 256 kept for its store and sensors): retry once some uploads or downloads end, or raise the limit")
        }
    }
}

/// Counts the connections of every listener it is given to and closes those past the limit as
/// they are accepted (saying so in the log at most once every 10 s), and those that open no call
/// within the idle timeout: the transport's own idle timer starts with the first call, so a
/// connection that never sends its HTTP/2 preface would be held for ever. Gives each stream its
/// flow control (StreamFlow.swift): an outbound window, its requests counted in `budget`, and an
/// end for the streams that stall.
public final class ConnectionGate: Sendable {
    public let limit: Int
    public let idleTimeout: Duration
    public let stallTimeout: Duration
    private let open = Atomic<Int>(0)
    private let streams = Atomic<Int>(0)
    private let descriptors: ClientDescriptors
    /// The connections that have opened a stream, by identity, while they are open.
    private let called = Mutex<Set<ObjectIdentifier>>([])
    private let refused = Atomic<Int>(0)
    private let stalled = Atomic<Int>(0)
    private let refusalWarning = RateLimitedWarning()
    private let stallWarnings = [RateLimitedWarning(), RateLimitedWarning()]
    private let flows = StreamFlows()
    private let budget: ByteBudget
    private let logger: Logger

    /// - Parameter budget: the bytes of requests held for clients, shared by every stream (the
    ///   agent's ingest budget): a stream whose next message finds no room stops reading.
    /// - Parameter descriptors: shared with the services that open files for clients (their
    ///   connections and files are counted together); by default the connections' own.
    public init(limits: ConnectionLimits, budget: ByteBudget, descriptors: ClientDescriptors? = nil, logger: Logger) {
        self.limit = limits.effectiveMaxConnections
        self.descriptors = descriptors ?? ClientDescriptors(limit: limits.effectiveMaxConnections)
        self.idleTimeout = limits.idleTimeout
        self.stallTimeout = limits.stallTimeout
        self.budget = budget
        self.logger = logger
    }

    public var openConnections: Int { open.load(ordering: .relaxed) }
    /// The calls open now, on every connection of every listener given this gate: each counted
    /// from when its stream opens (as the transport reads its headers, before its handler runs)
    /// until the stream closes.
    public var openStreams: Int { streams.load(ordering: .relaxed) }

    /// Whether the caller runs on `loop` and its call is the only one open: nothing else would
    /// wait while it blocks there (the agent's writes commit on the loop then, `Store.commitOnCaller`).
    public func isOnlyCall(on loop: any EventLoop) -> Bool {
        loop.inEventLoop && openStreams == 1
    }
    public var refusedConnections: Int { refused.load(ordering: .relaxed) }
    /// Streams ended because their clients read nothing, or sent nothing of a message they began,
    /// for the stall timeout.
    public var stalledStreams: Int { stalled.load(ordering: .relaxed) }

    /// Gives back each request's count as its call takes it, and makes every call's writes wait
    /// for its stream's window: give it to each listener.
    var interceptor: any ServerInterceptor { StreamFlowInterceptor(flows: flows) }

    /// `explains`: whether a refused connection gets HTTP/2's GOAWAY with the reason, which is
    /// written below TLS and so only on a plaintext listener (over TLS it is a bare close).
    func admit(_ channel: any Channel, explains: Bool = true) -> EventLoopFuture<Void> {
        open.add(1, ordering: .relaxed)
        let count = descriptors.add()
        let identity = ObjectIdentifier(channel)
        let silent = channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(idleTimeout / .nanoseconds(1)))) {
            if !self.called.withLock({ $0.contains(identity) }) { channel.close(promise: nil) }
        }
        channel.closeFuture.whenComplete { _ in
            silent.cancel()
            self.called.withLock { _ = $0.remove(identity) }
            self.open.subtract(1, ordering: .relaxed)
            self.descriptors.remove()
        }
        guard count > limit else { return channel.eventLoop.makeSucceededVoidFuture() }
        let total = refused.add(1, ordering: .relaxed).newValue
        if refusalWarning.due() {
            logger.warning("refusing connections: clients hold the most this agent takes (--max-connections, lowered to fit the descriptor limit)", metadata: [
                "max_connections": "\(limit)", "refused_so_far": "\(total)",
            ])
        }
        // This runs before the connection is registered with its event loop, where a close can be
        // lost: the handler closes it once it is active, before HTTP/2 hears of it.
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(CloseWhenActive(limit: self.limit, explains: explains), position: .first)
        }
    }

    /// A stream opened on a connection: it has called, and the transport's idle timer now keeps it.
    func opened(_ stream: any Channel) -> EventLoopFuture<Void> {
        if let connection = stream.parent {
            let identity = ObjectIdentifier(connection)
            called.withLock { _ = $0.insert(identity) }
        }
        let flow = StreamFlow(budget: budget)
        let number = flows.add(flow)
        streams.add(1, ordering: .relaxed)
        stream.closeFuture.whenComplete { [self] _ in
            flows.remove(number)
            streams.subtract(1, ordering: .relaxed)
        }
        return stream.eventLoop.makeCompletedFuture {
            let outbound = OutboundFlowHandler(window: flow.window, stallTimeout: stallTimeout) { [self] in
                stalled(why: "ended a stream whose client read nothing of it (--stream-stall-timeout)", warning: stallWarnings[0])
            }
            let inbound = InboundFlowHandler(ledger: flow.ledger, number: number, stallTimeout: stallTimeout) { [self] in
                stalled(why: "ended a stream whose client sent nothing more of a message it began (--stream-stall-timeout)", warning: stallWarnings[1])
            }
            // The inbound handler first: it sees each frame before the outbound one, which sees
            // only writes.
            try stream.pipeline.syncOperations.addHandlers([inbound, outbound], position: .first)
        }
    }

    private func stalled(why: String, warning: RateLimitedWarning) {
        let total = stalled.add(1, ordering: .relaxed).newValue
        if warning.due() {
            logger.warning("\(why)", metadata: [
                "stall_timeout_s": "\(stallTimeout.components.seconds)", "stalled_so_far": "\(total)",
            ])
        }
    }
}

/// Says whether a warning is due: at most one every 10 s, so that a flood of refusals logs a line,
/// not a flood.
private final class RateLimitedWarning: Sendable {
    private let last = Mutex<ContinuousClock.Instant?>(nil)

    func due() -> Bool {
        let now = ContinuousClock.now
        return last.withLock { last in
            guard last.map({ now - $0 >= .seconds(10) }) ?? true else { return false }
            last = now
            return true
        }
    }
}

/// Refuses its connection as soon as it is active, passing nothing on: HTTP/2's SETTINGS, then a
/// GOAWAY whose debug data says why (gRPC clients show it in their error, where a bare close read as
/// "bytes missing" or "socket closed"), then the close.
private final class CloseWhenActive: ChannelInboundHandler, Sendable {
    typealias InboundIn = NIOAny
    let limit: Int
    let explains: Bool

    init(limit: Int, explains: Bool) {
        self.limit = limit
        self.explains = explains
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { refuse(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        refuse(context: context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    private func refuse(context: ChannelHandlerContext) {
        guard explains else {
            context.close(promise: nil)
            return
        }
        let reason = Array("the agent holds the most client connections it takes (--max-connections, \(limit) here): close some, or raise it".utf8)
        var frames = context.channel.allocator.buffer(capacity: 9 + 9 + 8 + reason.count)
        func frameHeader(length: Int, type: UInt8) {
            frames.writeInteger(UInt8(truncatingIfNeeded: length >> 16))
            frames.writeInteger(UInt16(truncatingIfNeeded: length))
            frames.writeInteger(type)
            frames.writeInteger(UInt8(0))  // no flags
            frames.writeInteger(UInt32(0))  // stream 0: the connection
        }
        frameHeader(length: 0, type: 0x4)  // SETTINGS, none changed
        frameHeader(length: 8 + reason.count, type: 0x7)  // GOAWAY
        frames.writeInteger(UInt32(0))  // the last stream processed: none
        frames.writeInteger(UInt32(0xB))  // ENHANCE_YOUR_CALM
        frames.writeBytes(reason)
        let channel = context.channel
        context.writeAndFlush(NIOAny(frames)).whenComplete { _ in channel.close(promise: nil) }
    }
}
