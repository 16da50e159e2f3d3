import NIOCore

/// Runs tasks on one NIO event loop. The agent serves gRPC under this preference, on the loop its
/// connections are on; a client asked to (`AgentClient.with(onItsEventLoop:)`) runs its calls on
/// its connection's loop.
///
/// grpc-swift runs each call as a task on Swift concurrency's pool, while its bytes are read and
/// written on the connection's event loop: a unary call wakes a pool thread and then the loop
/// again, and on this project's 2-core VMs those wake-ups, more than the handler, were a call's
/// cost (the README's ingest-unary figures). Under this preference a call runs where its bytes
/// arrive, and a job enqueued from the loop itself joins its queue without a wake-up. What runs
/// there must not block: the agent's store and file I/O have threads of their own, and its long
/// calls leave the loop (`LongCallsOffTheLoop`). The loop must outlive every task that prefers it:
/// a job enqueued on a loop that has shut down is dropped, and its task never resumes.
public final class EventLoopExecutor: TaskExecutor {
    public let loop: any EventLoop

    public init(_ loop: any EventLoop) {
        self.loop = loop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        loop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
