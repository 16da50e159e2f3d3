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

    /// The keys whose call has not returned (or, during `runAll`, not yet started), and since when.
    public var hung: [Key: ContinuousClock.Instant] { running.calls.withLock { $0 } }

    public func run<Value>(_ key: Key, within deadline: Duration, _ body: @escaping () -> Value) -> Outcome<Value> {
        runAll([(key, body)], within: deadline)[0]
    }

    /// Runs the calls one after another on one thread, each within `deadline` of the answer
    /// before it (of the hand-off, for the first), and gives their outcomes in order: one
    /// hand-off to the thread and back for a tick's sensors rather than one each (a hand-off, two
    /// context switches, cost as much as a small sensor's whole reading). A call that overruns is
    /// given up on and the ones after it go on, on another thread. A key given twice runs once:
    /// the second is `.stillRunning`.
    public func runAll<Value>(_ calls: [(key: Key, body: () -> Value)], within deadline: Duration) -> [Outcome<Value>] {
        var outcomes = [Outcome<Value>?](repeating: nil, count: calls.count)
        var pending: [Int] = []
        let now = ContinuousClock.now
        for (index, call) in calls.enumerated() {
            if let since = running.claim(call.key, at: now) {
                outcomes[index] = .stillRunning(since: since)
            } else {
                pending.append(index)
            }
        }
        while !pending.isEmpty {
            let batch = Batch(pending.map { (calls[$0].key, UncheckedCall(body: calls[$0].body)) }, running: running)
            guard let worker = idle.withLock({ $0.popLast() }) ?? Worker.start() else {
                batch.run()  // no thread to be had: better unguarded than not at all
                for (offset, index) in pending.enumerated() { outcomes[index] = .finished(batch.result(offset)) }
                break
            }
            worker.start(batch.run)
            // One wake-up when the whole batch has answered, not one a call: the thread is
            // looked at only when a call's deadline passes.
            var answered = pending.count
            while !worker.wait(until: batch.deadline(deadline)) {
                if let stopped = batch.giveUpIfOverdue(deadline) {
                    answered = stopped
                    break
                }
            }
            for (offset, index) in pending.prefix(answered).enumerated() { outcomes[index] = .finished(batch.result(offset)) }
            if answered < pending.count {
                outcomes[pending[answered]] = .timedOut
                if !worker.letGo() { idle.withLock { $0.append(worker) } }
                pending = Array(pending[(answered + 1)...])
            } else {
                idle.withLock { $0.append(worker) }
                pending = []
            }
        }
        return outcomes.map { $0! }
    }
}

private final class RunningCalls<Key: Hashable & Sendable>: Sendable {
    let calls = Mutex<[Key: ContinuousClock.Instant]>([:])

    /// Marks `key` running from `now`; when a call of it already is, since when.
    func claim(_ key: Key, at now: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        calls.withLock { calls in
            if let since = calls[key] { return since }
            calls[key] = now
            return nil
        }
    }

    func finish(_ key: Key) {
        _ = calls.withLock { $0.removeValue(forKey: key) }
    }
}

/// Calls run in order on a worker's thread, each answer counted as it comes. The caller that
/// gives up on one stops the thread from starting the next: they go to another.
private final class Batch<Key: Hashable & Sendable, Value>: @unchecked Sendable {
    private struct Progress {
        var answered = 0
        /// When the call now running started: the last answer, or the hand-off for the first.
        var since: ContinuousClock.Instant
        var givenUp = false
    }

    private let calls: [(key: Key, call: UncheckedCall<Value>)]
    private let running: RunningCalls<Key>
    private let progress: Mutex<Progress>
    /// Each call's result, written by the thread before it counts the call answered and read
    /// after: elements apart, not an array that a read and a write could both hold.
    private let results: UnsafeMutablePointer<Value?>

    init(_ calls: [(key: Key, call: UncheckedCall<Value>)], running: RunningCalls<Key>) {
        self.calls = calls
        self.running = running
        progress = Mutex(Progress(since: .now))
        results = .allocate(capacity: calls.count)
        results.initialize(repeating: nil, count: calls.count)
    }

    deinit {
        results.deinitialize(count: calls.count)
        results.deallocate()
    }

    /// On the worker's thread.
    func run() {
        for (offset, call) in calls.enumerated() {
            let value = call.call.body()
            running.finish(call.key)
            results[offset] = value
            let givenUp = progress.withLock { progress in
                progress.answered = offset + 1
                progress.since = .now
                return progress.givenUp
            }
            if givenUp { return }
        }
    }

    /// When the call now running overruns (once all have answered: a deadline after the last).
    func deadline(_ deadline: Duration) -> ContinuousClock.Instant {
        progress.withLock { $0.since } + deadline
    }

    /// The number of calls that answered, once the one now running has overrun its deadline
    /// (the thread then starts no other); nil while it is within it, or all have answered.
    func giveUpIfOverdue(_ deadline: Duration) -> Int? {
        progress.withLock { progress in
            guard progress.answered < calls.count, ContinuousClock.now >= progress.since + deadline else { return nil }
            progress.givenUp = true
            return progress.answered
        }
    }

    func result(_ offset: Int) -> Value {
        results[offset]!
    }
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

    func start(_ job: @escaping @Sendable () -> Void) {
        state.withLock { $0.job = job; $0.done = false }
        wake.signal()
    }

    /// Whether the job returned by `deadline`.
    func wait(until deadline: ContinuousClock.Instant) -> Bool {
        let left = ContinuousClock.now.duration(to: deadline)
        let nanoseconds = max(0, Int(left.components.seconds) * 1_000_000_000 + Int(left.components.attoseconds / 1_000_000_000))
        return finished.wait(timeout: .now() + .nanoseconds(nanoseconds)) == .success
    }

    /// Its caller stops waiting for the job: true when the thread then ends with the job (it must
    /// not be used again), false when the job had returned already and the worker may serve again.
    func letGo() -> Bool {
        let ends = state.withLock { state -> Bool in
            if !state.done { state.letGo = true }
            return !state.done
        }
        if !ends { finished.wait() }
        return ends
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
