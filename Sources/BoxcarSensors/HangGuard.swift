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
/// Each call gets a thread of its own, not one of Dispatch's: Dispatch's pool on Linux has about
/// as many threads as CPUs, and two hung calls on a 2-CPU machine would starve everything else
/// queued there.
public final class HangGuard<Key: Hashable & Sendable>: Sendable {
    public enum Outcome<Value> {
        case finished(Value)
        /// It did not return within the deadline; it goes on in the background.
        case timedOut
        /// An earlier call for this key has not returned yet (since then).
        case stillRunning(since: ContinuousClock.Instant)
    }

    private let running = Mutex<[Key: ContinuousClock.Instant]>([:])

    public init() {}

    /// The keys whose call has not returned, and since when.
    public var hung: [Key: ContinuousClock.Instant] { running.withLock { $0 } }

    public func run<Value>(_ key: Key, within deadline: Duration, _ body: @escaping () -> Value) -> Outcome<Value> {
        let started = ContinuousClock.now
        if let since = running.withLock({ running -> ContinuousClock.Instant? in
            if let since = running[key] { return since }
            running[key] = started
            return nil
        }) {
            return .stillRunning(since: since)
        }
        let result = Box<Value>()
        let done = DispatchSemaphore(value: 0)
        let call = UncheckedCall(body: body)
        spawnThread {
            result.value = call.body()
            self.running.withLock { _ = $0.removeValue(forKey: key) }
            done.signal()
        }
        let (seconds, attoseconds) = deadline.components
        let nanoseconds = Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000)
        guard done.wait(timeout: .now() + .nanoseconds(nanoseconds)) == .success else { return .timedOut }
        return .finished(result.value!)
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

/// Runs `body` on a new detached thread (inline when no thread can be made).
private func spawnThread(_ body: @escaping () -> Void) {
    let context = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    var thread = pthread_t()
    let created = pthread_create(&thread, nil, { raw in
        Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue().body()
        return nil
    }, context)
    if created == 0 {
        pthread_detach(thread)
    } else {
        Unmanaged<ThreadBody>.fromOpaque(context).takeRetainedValue().body()
    }
}

private final class ThreadBody: @unchecked Sendable {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}
