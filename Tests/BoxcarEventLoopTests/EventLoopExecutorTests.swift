import BoxcarEventLoop
import Dispatch
import NIOPosix
import Testing

/// The agent serves gRPC under this preference to save a call's thread hops: each way a task can
/// be resumed must bring it back to the loop.
@Suite struct EventLoopExecutorTests {
    @Test func aTaskUnderThePreferenceRunsOnTheLoopWhateverResumesIt() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let seen = await withTaskExecutorPreference(EventLoopExecutor(loop)) {
            var seen = ["start": loop.inEventLoop]
            // Resumed from another thread, as the store's writer resumes a call.
            await withCheckedContinuation { continuation in
                DispatchQueue.global().async { continuation.resume() }
            }
            seen["after another thread"] = loop.inEventLoop
            try? await Task.sleep(for: .milliseconds(1))
            seen["after a timer"] = loop.inEventLoop
            // A child task inherits the preference (grpc-swift runs each stream as one).
            seen["child task"] = await withTaskGroup(of: Bool.self) { children in
                children.addTask { loop.inEventLoop }
                return await children.next()!
            }
            return seen
        }
        #expect(seen == ["start": true, "after another thread": true, "after a timer": true, "child task": true])
        #expect(!loop.inEventLoop)  // and the preference ends with its scope
        try await group.shutdownGracefully()
    }
}
