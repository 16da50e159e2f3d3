#if canImport(Glibc)
import Glibc
#endif
@testable import BoxcarSensors
import Synchronization
import Testing

@Suite struct HangGuardTests {
    /// The thread a call ran on.
    static func thread() -> UInt { UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(bitPattern: UInt(pthread_self())))) }

    @Test func callsThatReturnInTimeShareOneThreadAndAHungOneIsLetGo() throws {
        let guardian = HangGuard<String>()
        guard case .finished(let first) = guardian.run("cpu", within: .seconds(1), { Self.thread() }),
            case .finished(let second) = guardian.run("memory", within: .seconds(1), { Self.thread() })
        else { Issue.record("a quick call did not finish"); return }
        #expect(first == second)
        #expect(first != Self.thread())  // not on the caller's
        // A call that hangs until released: one deadline, then it is left to run.
        let released = Mutex(false)
        let started = ContinuousClock.now
        guard case .timedOut = guardian.run("nfs", within: .milliseconds(100), {
            while !released.withLock({ $0 }) { usleep(1000) }
            return Self.thread()
        }) else { Issue.record("the hung call was not given up on"); return }
        #expect(ContinuousClock.now - started < .seconds(1))
        #expect(guardian.hung.keys.sorted() == ["nfs"])
        guard case .stillRunning = guardian.run("nfs", within: .seconds(1), { Self.thread() }) else {
            Issue.record("the hung key was called again"); return
        }
        // Other keys go on, on another thread than the hung one.
        guard case .finished(let third) = guardian.run("cpu", within: .seconds(1), { Self.thread() }) else {
            Issue.record("a call after the hung one did not finish"); return
        }
        #expect(third != first)
        released.withLock { $0 = true }
        for _ in 0..<100 where !guardian.hung.isEmpty { usleep(10_000) }
        #expect(guardian.hung.isEmpty)
        guard case .finished = guardian.run("nfs", within: .seconds(1), { Self.thread() }) else {
            Issue.record("the key was not called again once its call returned"); return
        }
    }
}
