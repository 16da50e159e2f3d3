#if canImport(Glibc)
import Glibc
#endif
import BoxcarSensors
import Foundation
import Synchronization
import Testing

/// What a hung sensor must not do: hold the tick past its deadline, be called again while it
/// hangs, or keep the other sensors from answering, however many hang at once.
@Suite struct HangGuardTests {
    /// A call that blocks until `release`, counting how often it was made.
    final class Blocking: Sendable {
        private let released = Mutex(false)
        private let count = Mutex(0)
        var calls: Int { count.withLock { $0 } }

        func call() -> Int {
            count.withLock { $0 += 1 }
            while !released.withLock({ $0 }) { usleep(1000) }
            return 7
        }

        func release() { released.withLock { $0 = true } }
    }

    @Test func aQuickCallAnswersAndAHungOneIsGivenUpOnAfterItsDeadlineAndNotCalledAgain() throws {
        let guardian = HangGuard<String>()
        guard case .finished(let value) = guardian.run("cpu", within: .seconds(10), { 42 }) else {
            Issue.record("a quick call did not finish"); return
        }
        #expect(value == 42)

        let nfs = Blocking()
        let started = ContinuousClock.now
        guard case .timedOut = guardian.run("nfs", within: .milliseconds(100), nfs.call) else {
            Issue.record("the hung call was not given up on"); return
        }
        // One deadline (0.1 s), not for ever; the bound leaves room for a loaded machine.
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(guardian.hung.keys.sorted() == ["nfs"])
        guard case .stillRunning = guardian.run("nfs", within: .seconds(10), nfs.call) else {
            Issue.record("the hung key was not reported as still running"); return
        }
        #expect(nfs.calls == 1)

        nfs.release()
        let deadline = ContinuousClock.now + .seconds(30)
        while !guardian.hung.isEmpty && ContinuousClock.now < deadline { usleep(10_000) }
        #expect(guardian.hung.isEmpty)
        guard case .finished(let again) = guardian.run("nfs", within: .seconds(10), { 8 }) else {
            Issue.record("the key was not called again once its call returned"); return
        }
        #expect(again == 8)
    }

    /// Calls that answer in time share threads: starting one per call cost more than most
    /// sensors' whole reading, so a thousand calls must not start a thousand threads. Counted by
    /// the ids the kernel hands out (the last one given, in /proc/sys/kernel/ns_last_pid), since
    /// a thread per call would have ended by the time live threads are counted.
    @Test func callsThatAnswerInTimeDoNotEachStartAThread() throws {
        let guardian = HangGuard<String>()
        func lastTaskID() throws -> Int {
            let text = try String(contentsOfFile: "/proc/sys/kernel/ns_last_pid", encoding: .utf8)
            return try #require(Int(text.filter(\.isNumber)))
        }
        guard case .finished = guardian.run("warm", within: .seconds(10), { 0 }) else {
            Issue.record("a quick call did not finish"); return
        }
        let before = try lastTaskID()
        for index in 0..<1000 {
            guard case .finished = guardian.run("sensor \(index % 10)", within: .seconds(10), { index }) else {
                Issue.record("call \(index) did not finish"); return
            }
        }
        // Other tests and processes start tasks meanwhile: a margin, far below the 1000 of a
        // thread per call.
        #expect(try lastTaskID() - before < 500)
    }

    /// More hung calls than the machine has cores: a pool the size of the CPU count (Dispatch's)
    /// would have no thread left for the next call.
    @Test func manyHungCallsLeaveTheOthersAnswering() throws {
        let guardian = HangGuard<Int>()
        let hung = Blocking()
        defer { hung.release() }
        for key in 0..<8 {
            guard case .timedOut = guardian.run(key, within: .milliseconds(50), hung.call) else {
                Issue.record("hung call \(key) was not given up on"); return
            }
        }
        #expect(guardian.hung.count == 8)
        guard case .finished(let value) = guardian.run(100, within: .seconds(10), { 1 }) else {
            Issue.record("a call after eight hung ones did not finish"); return
        }
        #expect(value == 1)
    }

    /// A tick's calls go to one thread together and run in order, each within its own deadline:
    /// three calls of 0.8 s under a deadline of 2 s all answer, though together they take longer.
    @Test func callsRunTogetherEachWithinItsOwnDeadline() throws {
        let guardian = HangGuard<String>()
        let order = Mutex<[String]>([])
        let calls = ["cpu", "disk", "network"].map { name in
            (key: name, body: { () -> String in
                usleep(800_000)
                order.withLock { $0.append(name) }
                return name
            })
        }
        let outcomes = guardian.runAll(calls, within: .seconds(2))
        var answers: [String] = []
        for outcome in outcomes {
            guard case .finished(let answer) = outcome else { Issue.record("a call within its deadline was given up on: \(outcome)"); return }
            answers.append(answer)
        }
        #expect(answers == ["cpu", "disk", "network"])
        #expect(order.withLock { $0 } == ["cpu", "disk", "network"])
    }

    /// A hung call among a tick's others is given up on after its deadline; the calls after it
    /// still answer (on another thread), and the next tick skips it while it hangs.
    @Test func aHungCallAmongOthersIsGivenUpOnAndTheRestAnswer() throws {
        let guardian = HangGuard<String>()
        let nfs = Blocking()
        defer { nfs.release() }
        func tick() -> [HangGuard<String>.Outcome<Int>] {
            guardian.runAll([("cpu", { 1 }), ("nfs", nfs.call), ("network", { 3 })], within: .milliseconds(200))
        }
        let first = tick()
        guard case .finished(1) = first[0], case .timedOut = first[1], case .finished(3) = first[2] else {
            Issue.record("first tick: \(first)"); return
        }
        let second = tick()
        guard case .finished(1) = second[0], case .stillRunning = second[1], case .finished(3) = second[2] else {
            Issue.record("second tick: \(second)"); return
        }
        #expect(nfs.calls == 1)
        #expect(guardian.hung.keys.sorted() == ["nfs"])

        // Once its call returns, the key is free and the next tick calls it again.
        nfs.release()
        let deadline = ContinuousClock.now + .seconds(30)
        while !guardian.hung.isEmpty && ContinuousClock.now < deadline { usleep(10_000) }
        let third = tick()
        guard case .finished(1) = third[0], case .finished(7) = third[1], case .finished(3) = third[2] else {
            Issue.record("after the release: \(third)"); return
        }
        #expect(nfs.calls == 2)
    }
}
