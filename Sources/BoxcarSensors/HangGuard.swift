#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Synchronization

/// Runs calls that may never return (statvfs on a mount whose NFS server is gone, a driver call
/// on a GPU that fell off the bus) on a thread of their own and waits at most a deadline. A call
/// that overran is left to finish on its own; until it has, its key is not called again, so a
/// hung mount or sensor costs one wait and then nothing, and at most one thread.
///
/// The threads are the guard's own, not Dispatch's: Dispatch's pool on Linux has about as many
/// threads as CPUs, and two hung calls on a 2-CPU machine would starve everything else queued
/// there. A thread that answered in time serves the next call (starting one per call cost more
/// than most sensors' whole reading); one that overran is let go and ends with its call.
public final class HangGuard<Key: Hashable & Sendable>: Sendable {
    public enum Outcome<Value> {
        case finished(Value)
        /// It did not return within the deadline; it goes on in the background.
        case timedOut
        /// An earlier call for this key has not returned yet (since then).
        case stillRunning(since: ContinuousClock.Instant)
    }

    /// Keys whose call has not returned, shared with the workers: a worker let go still has to
    /// clear its key when its call returns, after the guard itself may be gone.
    private let running = RunningCalls<Key>()
    /// Workers waiting for a call.
    private let idle = Mutex<[Worker]>([])

    public init() {}

    deinit {
        for worker in idle.withLock({ $0 }) { worker.stop() }
    }

    /// The keys whose call has not returned, and since when.
    public var hung: [Key: ContinuousClock.Instant] { running.calls.withLock { $0 } }

    public func run<Value>(_ key: Key, within deadline: Duration, _ body: @escaping () -> Value) -> Outcome<Value> {
        let started = ContinuousClock.now
        if let since = running.calls.withLock({ calls -> ContinuousClock.Instant? in
            if let since = calls[key] { return since }
            calls[key] = started
            return nil
        }) {
            return .stillRunning(since: since)
        }
        let result = Box<Value>()
        let call = UncheckedCall(body: body)
        let running = self.running
        let job: @Sendable () -> Void = {
            result.value = call.body()
            running.calls.withLock { _ = $0.removeValue(forKey: key) }
        }
        guard let worker = idle.withLock({ $0.popLast() }) ?? Worker.start() else {
            job()  // no thread to be had: better unguarded than not at all
            return .finished(result.value!)
        }
        guard worker.run(job, within: deadline) else { return .timedOut }
        idle.withLock { $0.append(worker) }
        return .finished(result.value!)
    }
}

private final class RunningCalls<Key: Hashable & Sendable>: Sendable {
    let calls = Mutex<[Key: ContinuousClock.Instant]>([:])
}

/// A thread that runs one job at a time, handed over through `state`.
private final class Worker: Sendable {
    private struct State {
        var job: (@Sendable () -> Void)?
        var done = false
        /// Its caller stopped waiting: the thread ends once the job returns.
        var letGo = false
    }

    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)

    /// A worker on a new thread; nil when no thread can be made.
    static func start() -> Worker? {
        let worker = Worker()
        return spawnThread { worker.loop() } ? worker : nil
    }

    /// Runs `job` on the thread; false when it did not return within the deadline (the thread is
    /// then let go and must not be used again).
    func run(_ job: @escaping @Sendable () -> Void, within deadline: Duration) -> Bool {
        state.withLock { $0.job = job; $0.done = false }
        wake.signal()
        let (seconds, attoseconds) = deadline.components
        let nanoseconds = Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000)
        if finished.wait(timeout: .now() + .nanoseconds(nanoseconds)) == .success { return true }
        // It may have finished between the timeout and here: then it is as good as on time.
        let onTime = state.withLock { state -> Bool in
            if !state.done { state.letGo = true }
            return state.done
        }
        if onTime { finished.wait() }
        return onTime
    }

    func stop() {
        wake.signal()  // with no job: the thread ends
    }

    private func loop() {
        while true {
            wake.wait()
            guard let job = state.withLock({ state in defer { state.job = nil }; return state.job }) else { return }  // stopped
            job()
            let letGo = state.withLock { state in
                state.done = true
                return state.letGo
            }
            if letGo { return }
            finished.signal()
        }
    }
}

/// The call's result, written by its thread before the semaphore is signalled and read after.
private final class Box<Value>: @unchecked Sendable {
    var value: Value?
}

/// Sensors are not Sendable: the guard runs at most one call per key at a time, which is what
/// makes handing one to another thread safe.
private struct UncheckedCall<Value>: @unchecked Sendable {
    let body: () -> Value
}

/// Runs `body` on a new detached thread; false when no thread could be made.
private func spawnThread(_ body: @escaping () -> Void) -> Bool {
    let context = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    var thread = pthread_t()
    let created = pthread_create(&thread, nil, { raw in
        Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue().body()
        return nil
    }, context)
    guard created == 0 else {
        Unmanaged<ThreadBody>.fromOpaque(context).release()
        return false
    }
    pthread_detach(thread)
    return true
}

private final class ThreadBody: @unchecked Sendable {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}
