@testable import BoxcarServer
import BoxcarAPI
import BoxcarEventLoop
import GRPCCore
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// The agent serves calls on its listeners' event loop; only the short unary ones may stay there.
@Suite struct LongCallsOffTheLoopTests {
    /// Where the handler and the answer's producer of a call of `method` run, as the agent serves it.
    private func placement(of method: MethodDescriptor, loop: any EventLoop) async throws -> (handler: Bool, answer: Bool) {
        let context = ServerContext(
            descriptor: method, remotePeer: "unix:a", localPeer: "unix:b", cancellation: .init())
        let request = StreamingServerRequest<Int>(single: ServerRequest(metadata: [:], message: 1))
        return try await withTaskExecutorPreference(EventLoopExecutor(loop)) {
            let handlerOnLoop = Mutex(false)
            let response: StreamingServerResponse<Int> = try await LongCallsOffTheLoop().intercept(
                request: request, context: context
            ) { _, _ in
                handlerOnLoop.withLock { $0 = loop.inEventLoop }
                return StreamingServerResponse { _ in
                    return ["answer-on-loop": loop.inEventLoop ? "yes" : "no"]
                }
            }
            let trailers = try await response.accepted.get().producer(RPCWriter(wrapping: Discard()))
            let answerOnLoop = trailers[stringValues: "answer-on-loop"].contains { $0 == "yes" }
            return (handlerOnLoop.withLock { $0 }, answerOnLoop)
        }
    }

    @Test func shortUnaryCallsStayOnTheLoopAndTheRestLeaveIt() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let short = try await placement(of: Modelbox_ModelStore.Method.LogMetrics.descriptor, loop: loop)
        #expect(short.handler && short.answer)
        for long in [
            Modelbox_ModelStore.Method.GetMetrics.descriptor, Boxcar_V1_Agent.Method.QueryMetrics.descriptor,
            Boxcar_V1_Agent.Method.Log.descriptor, Modelbox_ModelStore.Method.UploadFile.descriptor,
            Modelbox_ModelStore.Method.DownloadFile.descriptor,
        ] {
            let placed = try await placement(of: long, loop: loop)
            #expect(!placed.handler && !placed.answer, "\(long.fullyQualifiedMethod) ran on the loop")
        }
        try await group.shutdownGracefully()
    }
}

/// A writer that drops what it is given.
private struct Discard: RPCWriterProtocol {
    func write(_ element: Int) async throws {}
    func write(contentsOf elements: some Sequence<Int>) async throws {}
}
