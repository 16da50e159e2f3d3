@testable import BoxcarServer
import BoxcarFlowControl
import Logging
import NIOCore
import NIOEmbedded
import NIOPosix
import Testing

/// The gate counts the calls open across its listeners: a lone call's write commits on the event
/// loop (`ConnectionGate.isOnlyCall`), any other goes to the store's writer thread.
@Suite struct OpenStreamsTests {
    // Synchronous: an embedded channel is to be used from one thread.
    @Test func eachStreamCountsFromItsOpeningToItsClose() throws {
        let gate = ConnectionGate(limits: ConnectionLimits(), budget: ByteBudget(capacity: 1 << 20), logger: Logger(label: "test"))
        let first = EmbeddedChannel()
        let second = EmbeddedChannel()
        #expect(gate.openStreams == 0)
        _ = gate.opened(first)
        #expect(gate.openStreams == 1)
        // An embedded channel's loop is always the caller's.
        #expect(gate.isOnlyCall(on: first.eventLoop))
        _ = gate.opened(second)
        #expect(gate.openStreams == 2)
        #expect(!gate.isOnlyCall(on: first.eventLoop))
        _ = try first.finish()
        #expect(gate.openStreams == 1)
        #expect(gate.isOnlyCall(on: second.eventLoop))
        // Off its loop, a call is not to block there.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        #expect(!gate.isOnlyCall(on: group.next()))
        try group.syncShutdownGracefully()
        _ = try second.finish()
        #expect(gate.openStreams == 0)
    }
}
